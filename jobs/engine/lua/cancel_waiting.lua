-- Cancel a job that has not started: it leaves every queue and its result says cancelled. No abort
-- request is left behind: a claim takes the job and its lock in one step, so no worker can hold it
-- unlocked, and a cancel of a waiting job costs the workers nothing (ARQ's abort set stays for the
-- running jobs whose abort was asked).
--
-- KEYS: none
-- ARGV: [1] job id, [2] the cancelled job's result record, [3] its ttl ms
-- Replies:
--   'cancelled'                      done: the job will not start
--   'finished'                       the job has ended already: nothing written
--   'running'                        an attempt holds the job's lock: nothing written
--   'missing'                        the job waits in no queue: nothing written

--- @include "fmt"
--- @include "now_ms"
--- @include "meta_key"
--- @include "job_key"
--- @include "result_key"
--- @include "in_progress_key"
--- @include "ready_key"
--- @include "deferred_key"
--- @include "queue_of"
--- @include "record_outcome"
--- @include "remove_arq_entry"
--- @include "fair_left_job"

local id = ARGV[1]
local q = queue_of(id)
if redis.call('EXISTS', result_key(id)) == 1 then return 'finished' end
if redis.call('EXISTS', in_progress_key(id)) == 1 then return 'running' end
if remove_arq_entry(q, id) == 0 then return 'missing' end
local now = now_ms()
if redis.call('ZREM', ready_key(q), id) == 1 then fair_left_job(q, id) end
redis.call('ZREM', deferred_key(q), id)
redis.call('PEXPIRE', job_key(id), 60000)
redis.call('SET', result_key(id), ARGV[2], 'PX', ARGV[3])
redis.call('HSET', meta_key(id), 'cancel_requested', fmt(now))
redis.call('PEXPIRE', meta_key(id), ARGV[3])
record_outcome(q, id, 'cancelled', now, false)
return 'cancelled'
