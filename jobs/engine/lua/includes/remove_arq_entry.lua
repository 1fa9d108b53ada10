--- @include "meta_key"
--- @include "arq_queue_key"

-- Take a job out of its ARQ queue, and out of jobsvc's count if it was counted (count_arq_entry);
-- ZREM's reply.
local function remove_arq_entry(q, id)
  local removed = redis.call('ZREM', arq_queue_key(q), id)
  local counted = redis.call('HGET', meta_key(id), '${ARQ_ENTRY_FIELD}')
  if counted then
    redis.call('HDEL', meta_key(id), '${ARQ_ENTRY_FIELD}')
    redis.call('HINCRBY', '${ARQ_OWNED}', counted, -1)
  end
  return removed
end
