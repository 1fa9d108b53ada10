-- Extend the leases of a worker's running jobs: their in-progress locks, their places in their queues'
-- running sets and in their concurrency slots (only where they still are).
--
-- KEYS: none
-- ARGV: [1] lease ms, then per job [i] id, [i+1] queue, [i+2] limit slot ('' for none)
-- Replies 0.

--- @include "fmt"
--- @include "now_ms"
--- @include "in_progress_key"
--- @include "running_key"

local lease = tonumber(ARGV[1])
local now = now_ms()
for i = 2, #ARGV, 3 do
  local id, q, slot = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('PEXPIRE', in_progress_key(id), lease)
  redis.call('ZADD', running_key(q), 'XX', fmt(now + lease), id)
  if slot ~= '' then redis.call('ZADD', slot .. ':running', 'XX', fmt(now + lease), id) end
end
return 0
