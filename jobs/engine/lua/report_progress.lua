-- Record the progress a running job reports, and tell its tenant: the job's meta gets ``progress``
-- (only while the meta exists, so that a job deleted with its tenant's data while it ran never gets
-- its record back), and the tenant's event stream a ``progress`` event naming the job. Only from the
-- attempt that holds the job: an attempt whose lease another claim took over reports nothing.
--
-- KEYS: none
-- ARGV: [1] job id, [2] the progress as JSON ({current, total, message}), [3] the attempt's lease token
--       ('' for an attempt run without a claim)
-- Replies:
--   1                                recorded and told
--   0                                the job's meta is gone, or another claim holds the job: nothing
--                                    written

--- @include "meta_key"
--- @include "in_progress_key"
--- @include "emit_event"

local id, progress, token = ARGV[1], ARGV[2], ARGV[3]
local meta = meta_key(id)
if redis.call('EXISTS', meta) == 0 then return 0 end
if token ~= '' then
  local holder = redis.call('GET', in_progress_key(id))
  if holder and holder ~= token then return 0 end
end
redis.call('HSET', meta, 'progress', progress)
local m = redis.call('HMGET', meta, 'tenant', 'type', 'queue')
emit_event(m[1] or '${DEFAULT_TENANT}', id, m[2] or '', m[3] or '${DEFAULT_QUEUE}', 'progress', 'in_progress',
           {progress = cjson.decode(progress)})
return 1
