-- Read jobs for their views (records.read_snapshots) in one round trip: for each id its meta, ARQ's record,
-- result and lock, the attempts ARQ counted, and, for a job that waits (a record, no result, no lock), its
-- score in its ARQ queue.
--
-- KEYS: none
-- ARGV: [1] the reader's tenant ('' for any), [2..] job ids
-- Replies one row per id: {meta (HGETALL's field, value pairs), record, result, locked (0/1), ARQ's
-- attempts, score}, false where there is none. A job whose meta names another tenant reads as one that
-- does not exist, with the commands an unknown id costs.

--- @include "meta_key"
--- @include "job_key"
--- @include "result_key"
--- @include "in_progress_key"
--- @include "retry_key"
--- @include "arq_queue_key"

local function field(pairs, name)
  for i = 1, #pairs, 2 do
    if pairs[i] == name then return pairs[i + 1] end
  end
  return nil
end

local reader = ARGV[1]
local rows = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  -- the same reads for every id, so that another tenant's job costs what an unknown id does
  local meta = redis.call('HGETALL', meta_key(id))
  local record = redis.call('GET', job_key(id))
  local result = redis.call('GET', result_key(id))
  local locked = redis.call('EXISTS', in_progress_key(id))
  local attempts = redis.call('GET', retry_key(id))
  local owner = field(meta, 'tenant')
  if reader ~= '' and owner and owner ~= reader then
    rows[#rows + 1] = {{}, false, false, 0, false, false}
  else
    local score = false
    if record and not result and locked == 0 then
      score = redis.call('ZSCORE', arq_queue_key(field(meta, 'queue') or '${DEFAULT_QUEUE}'), id)
    end
    rows[#rows + 1] = {meta, record, result, locked, attempts, score}
  end
end
return rows
