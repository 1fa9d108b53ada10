-- Enqueue a schedule's job for one tick exactly once, however many workers try; without overlap, a
-- tick whose previous run still waits or runs is skipped.
--
-- KEYS: [1] index of the tenant's jobs, [2] index by type, [3] index by queue
-- ARGV: [1] schedule name, [2] tick ms, [3] may overlap (0/1), [4] the job, packed (see unpack_job)
-- Replies {outcome, detail}:
--   {'created', '0'}                 the tick's job was written
--   {'taken', ''}                    this tick (or a later one) was enqueued already
--   {'skipped', previous job id}     the previous run has not ended and the schedule may not overlap
--   {'exists', ''}                   the tick's job id is taken (its record outlived the schedule state)
-- (A scheduled job names no parents: no parent refusal.)

--- @include "job_key"
--- @include "unpack_job"
--- @include "enqueue"

local state = '${SCHEDULE_PREFIX}' .. ARGV[1]
local tick = tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', state, 'tick') or '0')
if tick <= last then return {'taken', ''} end
redis.call('HSET', state, 'tick', ARGV[2])
if ARGV[3] == '0' then
  local previous = redis.call('HGET', state, 'job_id')
  if previous and redis.call('EXISTS', job_key(previous)) == 1 then
    redis.call('HSET', state, 'skipped_at', ARGV[2])
    redis.call('HINCRBY', state, 'skipped', 1)
    return {'skipped', previous}
  end
end
local job = unpack_job(ARGV[4])
local outcome = enqueue(job, {KEYS[1], KEYS[2], KEYS[3]})
if outcome[1] == 'created' then redis.call('HSET', state, 'job_id', job.id, 'enqueued_at', ARGV[2]) end
return outcome
