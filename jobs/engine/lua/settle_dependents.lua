-- Settle the dependents of a job that ended: when it succeeded, those that wait for nothing else are
-- placed in line; otherwise they are returned, to be cancelled (by cancel_waiting.lua). Once none are
-- left, the job leaves the settling set.
--
-- KEYS: none
-- ARGV: [1] the id of the job that ended
-- Replies:
--   {}                               nothing left to do: dependents released (or none)
--   {id, ...}                        the dependents still to cancel (the job did not succeed)

--- @include "now_ms"
--- @include "meta_key"
--- @include "dependents_key"
--- @include "place_if_waiting"

local parent = ARGV[1]
local outcome = redis.call('HGET', meta_key(parent), 'outcome')
local children = redis.call('SMEMBERS', dependents_key(parent))
if outcome == 'succeeded' then
  local now = now_ms()
  for _, child in ipairs(children) do
    if redis.call('HINCRBY', meta_key(child), 'waiting_for', -1) <= 0 then
      redis.call('HDEL', meta_key(child), 'waiting_for')
      place_if_waiting(child, now)
    end
  end
  children = {}
end
if #children == 0 then
  redis.call('DEL', dependents_key(parent))
  redis.call('ZREM', '${SETTLING}', parent)
end
return children
