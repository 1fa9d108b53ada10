-- How many entries of each of jobsvc's ARQ queues jobsvc did not write, that is ARQ's own producers'
-- jobs (count_arq_entry.lua): ZCARD minus jobsvc's count. Workers read it at every look, usually in the same
-- round trip as their blocking wait, so it is sent with EVAL.
--
-- KEYS: none
-- ARGV: queue names
-- Replies: {now ms, then the difference of each queue, in ARGV's order}

--- @include "now_ms"
--- @include "arq_queue_key"

local owned = redis.call('HMGET', '${ARQ_OWNED}', unpack(ARGV))
local reply = {now_ms()}
for i, q in ipairs(ARGV) do
  reply[i + 1] = redis.call('ZCARD', arq_queue_key(q)) - (tonumber(owned[i]) or 0)
end
return reply
