-- Submit one job, once per Idempotency-Key and within its tenant's quotas.
--
-- KEYS: [1] index of the tenant's jobs, [2] index by type, [3] index by queue, [4] the Idempotency-Key
--       record (unused when ARGV[1] is '')
-- ARGV: [1] idempotency value to record ('' for no Idempotency-Key), [2] its ttl ms, [3] the default
--       quotas, packed (over_quota; '' to leave the quotas unchecked), [4] the job, packed (see
--       unpack_job), [5] optional: the id of the ended job this one runs again (a replay or a retry),
--       marked ``replayed_as`` this job and taken out of the dead letters in this script
-- Replies {outcome, detail}:
--   {'created', parents waited for}  written
--   {'duplicate', the earlier value} the Idempotency-Key was used: nothing written
--   {'exists', ''}                   a job with this id exists: nothing written
--   {'unknown_parent', parent id}    a parent is not the tenant's waiting, running or ended job
--   {'parent_<outcome>', parent id}  a parent failed or was cancelled: it could never run
--   {'queue_not_allowed', queue}     the tenant may not use the job's queue
--   {'priority_not_allowed', top}    the job's priority is above the tenant's highest
--   {'over_open', ''}                the tenant has as many open jobs as its quota allows
--   {'over_kept_jobs', budget}       the tenant keeps as many jobs as its budget allows
--   {'over_kept_bytes', budget}      the job would take the tenant's kept bytes past its budget
--   {'over_budget', budget}          the job alone is larger than the tenant's bytes budget
--   {'over_rate', ms to wait}        the tenant submitted as many jobs this second as it may
--   {'gone', ''}                     (with ARGV[5]) the job to run again has expired: nothing written
--   {'replayed', new job id}         (with ARGV[5]) it ran again already, as that job: nothing written

--- @include "unpack_job"
--- @include "over_quota"
--- @include "enqueue"
--- @include "replay_mark"
--- @include "now_ms"
--- @include "new_batch"
--- @include "write_batch"

if ARGV[1] ~= '' then
  local prior = redis.call('GET', KEYS[4])
  if prior then return {'duplicate', prior} end
end
local job = unpack_job(ARGV[4])
local again = ARGV[5]
if again and again ~= '' then
  local refused = replay_refusal(again)
  if refused then return refused end
end
local batch = new_batch(now_ms())  -- enqueue's: the tenant's weight read with its quotas
if ARGV[3] ~= '' then
  local refused, weight = over_quota(job.tenant, 1, #job.record, ARGV[3], {[job.queue] = true}, job.priority,
                                     batch.now)
  if refused then return refused end
  batch.weights[job.tenant] = weight
end
local outcome = enqueue(job, {KEYS[1], KEYS[2], KEYS[3]}, nil, batch)
write_batch(batch)
if outcome[1] == 'created' then
  if again and again ~= '' then mark_replayed(again, job.id, job.tenant) end
  if ARGV[1] ~= '' then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2]) end
end
return outcome
