-- Mark a job as run again (``replayed_as``) before its replay is enqueued, and take it out of its
-- tenant's dead letters: of two concurrent replays, one marks it and the other is refused. Undone by
-- unmark_replayed.lua when the new job could not be enqueued.
--
-- KEYS: [1] the old job's meta, [2] the old job's result, [3] the tenant's dead letters
-- ARGV: [1] old job id, [2] new job id
-- Replies {outcome, detail}:
--   {'marked', dead-letter score}    marked; detail: its score in the dead letters ('' if it was none)
--   {'replayed', new job id}         it ran again already, as that job: nothing written
--   {'gone', ''}                     its result expired: nothing written
local ttl = redis.call('PTTL', KEYS[2])
if ttl == -2 then return {'gone', ''} end
local prior = redis.call('HGET', KEYS[1], 'replayed_as')
if prior then return {'replayed', prior} end
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('HSET', KEYS[1], 'replayed_as', ARGV[2])
-- a meta hash that had expired before its result lives no longer than the result
if fresh and ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
local score = redis.call('ZSCORE', KEYS[3], ARGV[1])
if score then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', '${DEAD_BY_QUEUE_PREFIX}' .. (redis.call('HGET', KEYS[1], 'queue') or '${DEFAULT_QUEUE}'), ARGV[1])
end
return {'marked', score or ''}
