-- Let parked jobs go where their concurrency limit has room now. A job parked at a limit waits for a
-- running one to free a slot (release_slot); a limit an operator raised or removed (limits come from
-- the workers' settings) frees none by itself, so the jobs parked under the old one would wait for
-- ever. Each worker runs this at its heartbeat with its own view of the limits; the jobs go back in
-- line in the order they were parked, and the claim admits them as usual.
--
-- KEYS: none
-- ARGV: [1] limits (JSON: job type -> {c = at most running, ...}), [2] the most jobs to let go
-- Replies: how many parked jobs went back in line

--- @include "fmt"
--- @include "now_ms"
--- @include "place_if_waiting"

local limits = cjson.decode(ARGV[1])
local budget = tonumber(ARGV[2])
local now = now_ms()
local let_go = 0
for _, name in ipairs(redis.call('SMEMBERS', '${PARKED_LIMITS}')) do
  local slot = '${LIMIT_PREFIX}' .. name
  local limit = limits[string.match(name, '^[^:]+')]
  local room = budget - let_go
  if limit and limit.c then
    redis.call('ZREMRANGEBYSCORE', slot .. ':running', '-inf', fmt(now))
    room = math.min(room, limit.c - redis.call('ZCARD', slot .. ':running'))
  end
  while room > 0 do
    local parked = redis.call('LPOP', slot .. ':parked')
    if not parked then break end
    if place_if_waiting(parked, now) then
      room = room - 1
      let_go = let_go + 1
    end
  end
  if redis.call('EXISTS', slot .. ':parked') == 0 then redis.call('SREM', '${PARKED_LIMITS}', name) end
end
return let_go
