-- End an attempt and release its claim (claim.lua): either the job ended (result written, out of every
-- queue, among the dead letters if it failed for good) or it waits again (a retry after its delay, or
-- a hand-back at once). Either way its lock, lease and concurrency slot are given up.
--
-- KEYS: none
-- ARGV: [1] job id, [2] queue, [3] limit slot ('' for none), [4] mode ('finish' or 'again'), [5] result
--       record ('' for none), [6] result ttl ms (0: forever), [7] keep the in-progress lock ms ('' to
--       delete it), [8] delay ms (again), [9] handed back (0/1: the attempt does not count), [10]
--       outcome ('succeeded', 'failed', 'cancelled' or ''), [11] bury among the dead letters (0/1),
--       [12] dead letter retention ms, [13] the claim's lease token
-- Replies:
--   'ended'                          the job ended (its outcome, if one was given, recorded now)
--   'settle'                         the job ended and dependents wait to be settled (settle_dependents.lua)
--   'ended_earlier'                  the job ended, but its end had been recorded before (outcome, counts
--                                    and event are that first end's)
--   'again'                          the job waits in line again
--   'gone'                           the job was deleted while it ran (purge_job.lua), or is to wait
--                                    again but no longer waits in ARQ's queue: only its lock, lease and
--                                    slot were released
--   'stale'                          another claim holds the job now (this attempt's lease lapsed and
--                                    it was claimed again), or its lease lapsed and its concurrency slot
--                                    was given up (another job may run in it now): nothing changed, the
--                                    job runs again. A lapsed lease whose slot nobody took (or that has
--                                    none) is still this attempt's to release
-- Safe to send twice (redis-py resends a command whose connection dropped): a release is remembered
-- with its token in the job's meta (${RELEASED_FIELD}; for a few seconds when the meta is gone), and the
-- same release again answers as the first did, changing nothing.

--- @include "fmt"
--- @include "now_ms"
--- @include "meta_key"
--- @include "job_key"
--- @include "result_key"
--- @include "retry_key"
--- @include "in_progress_key"
--- @include "arq_queue_key"
--- @include "ready_key"
--- @include "deferred_key"
--- @include "running_key"
--- @include "place"
--- @include "release_slot"
--- @include "record_outcome"
--- @include "emit_event"
--- @include "remove_arq_entry"
--- @include "fair_left_job"
--- @include "resend_memory"

local id, q, slot, mode, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[13]
local holder = redis.call('GET', in_progress_key(id))
if holder and holder ~= token then return 'stale' end
-- sent again: the lock is gone (or, for a lock kept on, still this token's)
if token ~= '' and (not holder or ARGV[7] ~= '') then
  local mine = token .. ' '
  local earlier = redis.call('HGET', meta_key(id), '${RELEASED_FIELD}')
  if not earlier or string.sub(earlier, 1, #mine) ~= mine then  -- not this release's: a 'gone', if any
    earlier = recall('${RELEASED_PREFIX}', id, now_ms())
  end
  if earlier and string.sub(earlier, 1, #mine) == mine then
    return string.sub(earlier, #mine + 1)  -- this very release, sent again
  end
end
-- a lapsed lease whose limit's slot was given up (pruned by a claim, or freed when the lapse was found):
-- ending the job now would let it count as having run beside the job that took its slot
if not holder and slot ~= '' and not redis.call('ZSCORE', slot .. ':running', id) then return 'stale' end

local now = now_ms()
local function release()
  -- the meta, read once: record_outcome's fields, whether jobsvc counted its ARQ queue entry, its priority,
  -- its attempts (claim.lua)
  local m = redis.call('HMGET', meta_key(id), 'outcome', 'tenant', 'type', 'started_at', 'kept_bytes',
                       '${ARQ_ENTRY_FIELD}', 'priority', 'tries')
  if not m[3] then  -- its meta is gone: deleted with its tenant's data while it ran (purge_job.lua)
    redis.call('DEL', in_progress_key(id), retry_key(id), job_key(id))
    redis.call('ZREM', running_key(q), id)
    release_slot(slot, id, now)
    return 'gone'
  end
  -- the lock goes now, or (an end) with the job's record, in one DEL
  local lock = in_progress_key(id)
  if ARGV[7] ~= '' then
    redis.call('PEXPIRE', lock, ARGV[7])
    lock = nil
  elseif mode == 'again' then
    redis.call('DEL', lock)
  end
  redis.call('ZREM', running_key(q), id)
  release_slot(slot, id, now)
  if mode == 'again' then
    if ARGV[9] == '1' then  -- the attempt is given back: where the claim counted it
      if m[8] then redis.call('HINCRBY', meta_key(id), 'tries', -1) else redis.call('DECR', retry_key(id)) end
    end
    local due = redis.call('ZSCORE', arq_queue_key(q), id)
    if not due then return 'gone' end
    due = tonumber(due) + tonumber(ARGV[8])
    redis.call('ZADD', arq_queue_key(q), fmt(due), id)
    local tenant = m[2] or '${DEFAULT_TENANT}'
    place(q, id, due, tonumber(m[7]) or 5, now, tenant)
    local reason = 'handed_back'
    if ARGV[9] ~= '1' then reason = 'retry' end  -- the worker tallies the retry (jobs.engine.metrics)
    local status = 'queued'
    if due > now then status = 'deferred' end
    emit_event(tenant, id, m[3], q, 'status', status, {reason = reason})
    return 'again'
  end
  if ARGV[5] ~= '' then
    if tonumber(ARGV[6]) > 0 then
      redis.call('SET', result_key(id), ARGV[5], 'PX', ARGV[6])
      redis.call('PEXPIRE', meta_key(id), ARGV[6])  -- the job's meta lives as long as its result
    else
      redis.call('SET', result_key(id), ARGV[5])
      redis.call('PERSIST', meta_key(id))
    end
  end
  if ARGV[11] == '1' then
    redis.call('ZADD', '${DEAD_LETTERS_PREFIX}' .. (m[2] or '${DEFAULT_TENANT}'), fmt(now), id)
    -- the queue's count of dead letters (``jobsvc_dead_letters``), pruned of those past their retention
    redis.call('ZADD', '${DEAD_BY_QUEUE_PREFIX}' .. q, fmt(now), id)
    redis.call('ZREMRANGEBYSCORE', '${DEAD_BY_QUEUE_PREFIX}' .. q, '-inf', fmt(now - tonumber(ARGV[12])))
    for _, key in ipairs({result_key(id), meta_key(id), '${ATTEMPTS_PREFIX}' .. id}) do
      redis.call('PEXPIRE', key, ARGV[12])
    end
  end
  if lock then
    redis.call('DEL', retry_key(id), job_key(id), lock)
  else
    redis.call('DEL', retry_key(id), job_key(id))
  end
  redis.call('ZREM', '${ABORT_SET}', id)
  remove_arq_entry(q, id, m[6])
  if not holder then  -- its lease lapsed: a claim may have put it back in line meanwhile
    if redis.call('ZREM', ready_key(q), id) == 1 then fair_left_job(q, id) end
    redis.call('ZREM', deferred_key(q), id)
  end
  -- what stays of the job for its tenant's storage budget: the result written here, as long as it lives
  local stays = nil
  if ARGV[5] ~= '' then
    local ttl = tonumber(ARGV[6])
    if ARGV[11] == '1' then ttl = tonumber(ARGV[12]) elseif ttl <= 0 then ttl = -1 end
    stays = {result = #ARGV[5], ttl = ttl}
  end
  -- the worker tallies this end in its own counters (jobs.engine.metrics.Tally) when it is the first
  return record_outcome(q, id, ARGV[10], now, true, stays, m, token ~= '' and token or nil)
end

local reply = release()
-- remembered for a resend: by record_outcome, with the outcome it recorded; else here, in the meta (or,
-- the meta gone, for a few seconds)
local recorded = ARGV[10] ~= '' and (reply == 'ended' or reply == 'settle')
if token ~= '' and not recorded then
  if reply == 'gone' then
    remember('${RELEASED_PREFIX}', id, token .. ' ' .. reply, now)
  else
    redis.call('HSET', meta_key(id), '${RELEASED_FIELD}', token .. ' ' .. reply)
  end
end
return reply
