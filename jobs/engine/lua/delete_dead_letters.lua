-- Delete dead letters with their records; a job's records are deleted only if it was still a dead
-- letter (a concurrent replay or delete took it first).
--
-- KEYS: [1] the tenant's dead letters, then per job its result, meta and attempts
-- ARGV: the job ids, in the order of their keys
-- Replies the number of jobs that were still dead letters, now deleted (0 to #ARGV).
local removed = 0
for i, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local k = 2 + (i - 1) * 3
    local q = redis.call('HGET', KEYS[k + 1], 'queue') or '${DEFAULT_QUEUE}'
    redis.call('ZREM', '${DEAD_BY_QUEUE_PREFIX}' .. q, id)
    redis.call('DEL', KEYS[k], KEYS[k + 1], KEYS[k + 2])
    removed = removed + 1
  end
end
return removed
