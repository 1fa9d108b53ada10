-- Add a worker's numbered batch of metric increments to the cluster's counters, once: a batch sent again
-- (its reply was lost to a dropped connection, so the worker cannot know it was added) changes nothing.
--
-- KEYS: none
-- ARGV: [1] worker id, [2] the batch's number (rising per worker), [3..] field, increment, field, ...
-- Replies:
--   1                                added
--   0                                this batch (or a later one of the worker's) was added before

local seen = '${TALLIED_PREFIX}' .. ARGV[1]
if tonumber(redis.call('GET', seen) or '0') >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', seen, ARGV[2], 'PX', ${TALLIED_MEMORY_MS})
for i = 3, #ARGV, 2 do redis.call('HINCRBY', '${METRICS}', ARGV[i], ARGV[i + 1]) end
return 1
