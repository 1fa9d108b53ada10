-- Undo mark_replayed.lua when the replay could not be enqueued, so the old job can run again later: its
-- mark goes (if it is still this replay's) and it is a dead letter again (if it was one).
--
-- KEYS: [1] the old job's meta, [2] the tenant's dead letters
-- ARGV: [1] old job id, [2] new job id, [3] the old job's dead-letter score ('' when it was none)
-- Replies 1.
if redis.call('HGET', KEYS[1], 'replayed_as') == ARGV[2] then redis.call('HDEL', KEYS[1], 'replayed_as') end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  redis.call('ZADD', '${DEAD_BY_QUEUE_PREFIX}' .. (redis.call('HGET', KEYS[1], 'queue') or '${DEFAULT_QUEUE}'),
             ARGV[3], ARGV[1])
end
return 1
