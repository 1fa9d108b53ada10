-- Delete one of a tenant's jobs and every trace of it: out of every queue, its records gone, its
-- dependents' links gone. A running one is asked to abort; its worker writes nothing back, as its meta
-- is gone (release_claim.lua answers 'gone', report_progress.lua writes nothing).
--
-- KEYS: none
-- ARGV: [1] job id, [2] tenant
-- Replies:
--   1                                the job was the tenant's and is deleted
--   0                                no such job, or another tenant's: nothing written

--- @include "fmt"
--- @include "now_ms"
--- @include "meta_key"
--- @include "job_key"
--- @include "result_key"
--- @include "retry_key"
--- @include "in_progress_key"
--- @include "ready_key"
--- @include "deferred_key"
--- @include "running_key"
--- @include "dependents_key"
--- @include "tenant_of"
--- @include "queue_of"
--- @include "remove_arq_entry"
--- @include "fair_left_job"

local id, tenant = ARGV[1], ARGV[2]
if redis.call('EXISTS', meta_key(id), job_key(id), result_key(id)) == 0 then return 0 end
if tenant_of(id) ~= tenant then return 0 end
local q = queue_of(id)
remove_arq_entry(q, id)
if redis.call('ZREM', ready_key(q), id) == 1 then fair_left_job(q, id) end
redis.call('ZREM', deferred_key(q), id)
if redis.call('EXISTS', in_progress_key(id)) == 1 then
  redis.call('ZADD', '${ABORT_SET}', fmt(now_ms()), id)
else
  redis.call('ZREM', running_key(q), id)
end
redis.call('DEL', job_key(id), result_key(id), meta_key(id), retry_key(id), dependents_key(id),
           '${ATTEMPTS_PREFIX}' .. id)
redis.call('ZREM', '${SETTLING}', id)
redis.call('ZREM', '${DEAD_BY_QUEUE_PREFIX}' .. q, id)
return 1
