--- @include "meta_key"
--- @include "arq_queue_key"

-- Take a job out of its ARQ queue, and out of jobsvc's count if it was counted (count_arq_entry);
-- ZREM's reply. ``counted``: the job's ${ARQ_ENTRY_FIELD} when the caller read it (false: none), else
-- nil: read here. The mark leaves the meta with the entry: a kept job's meta carries no more than it needs.
local function remove_arq_entry(q, id, counted)
  local removed = redis.call('ZREM', arq_queue_key(q), id)
  if removed == 1 then
    if counted == nil then counted = redis.call('HGET', meta_key(id), '${ARQ_ENTRY_FIELD}') end
    if counted then
      redis.call('HDEL', meta_key(id), '${ARQ_ENTRY_FIELD}')
      redis.call('HINCRBY', '${ARQ_OWNED}', counted, -1)
    end
  end
  return removed
end
