-- Extend the leases of a worker's running jobs: their in-progress locks, their places in their queues'
-- running sets and in their concurrency slots (only where they still are). Only a lease still held:
-- a job whose lock holds another token (its lease lapsed and another claim took it) or none at all (it
-- lapsed) is left alone and named in the reply, so that the worker stops that attempt.
--
-- KEYS: none
-- ARGV: [1] lease ms, then per job [i] id, [i+1] queue, [i+2] limit slot ('' for none), [i+3] token
-- Replies the ids of the jobs whose leases were lost (possibly none).

--- @include "fmt"
--- @include "now_ms"
--- @include "in_progress_key"
--- @include "running_key"

local lease = tonumber(ARGV[1])
local now = now_ms()
local lost = {}
for i = 2, #ARGV, 4 do
  local id, q, slot, token = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('GET', in_progress_key(id)) == token then
    redis.call('PEXPIRE', in_progress_key(id), lease)
    redis.call('ZADD', running_key(q), 'XX', fmt(now + lease), id)
    if slot ~= '' then redis.call('ZADD', slot .. ':running', 'XX', fmt(now + lease), id) end
  else
    table.insert(lost, id)
  end
end
return lost
