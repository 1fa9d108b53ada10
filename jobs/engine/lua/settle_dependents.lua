-- Settle the dependents of a job that ended, a step at a time so that a fan-out of any size never
-- holds Redis for long: when it succeeded, up to ``step`` of them are taken from its list and those
-- that wait for nothing else placed in line; otherwise up to ``step`` are returned, to be cancelled (by
-- cancel_waiting.lua) and taken from the list by the caller. Once none are left, the job leaves the
-- settling set.
--
-- KEYS: none
-- ARGV: [1] the id of the job that ended, [2] the most dependents to handle in this call
-- Replies {done, {id, ...}}:
--   done      1 when nothing is left to do (the job left the settling set), else 0: call again
--   ids       the dependents to cancel now (the job did not succeed); empty when it succeeded

--- @include "now_ms"
--- @include "meta_key"
--- @include "dependents_key"
--- @include "fmt"
--- @include "queue_of"
--- @include "arq_queue_key"
--- @include "place_if_waiting"

local parent, step = ARGV[1], tonumber(ARGV[2])
local key = dependents_key(parent)
local to_cancel = {}
if redis.call('HGET', meta_key(parent), 'outcome') == 'succeeded' then
  local now = now_ms()
  for _, child in ipairs(redis.call('SPOP', key, step)) do
    if redis.call('HINCRBY', meta_key(child), 'waiting_for', -1) <= 0 then
      redis.call('HDEL', meta_key(child), 'waiting_for')
      -- due now, its parents having ended: its queued expiry counts from here (jobs.engine.sweep)
      redis.call('ZADD', arq_queue_key(queue_of(child)), 'XX', fmt(now), child)
      place_if_waiting(child, now)
    end
  end
else
  to_cancel = redis.call('SRANDMEMBER', key, step)
end
if redis.call('EXISTS', key) == 1 then return {0, to_cancel} end
redis.call('ZREM', '${SETTLING}', parent)
return {1, {}}
