--- @include "meta_key"
--- @include "result_key"

-- A job run again (a dead letter replayed, a failed job retried) is marked ``replayed_as`` its new job
-- and leaves its tenant's dead letters in the same script that enqueues the new job: no crash between
-- the two can leave it marked for a job that never existed, or out of the dead letters unreplayed.

-- Why ``old`` cannot run again now, or nil: {'gone', ''} (its result expired) or {'replayed', new id}.
local function replay_refusal(old)
  if redis.call('EXISTS', result_key(old)) == 0 then return {'gone', ''} end
  local prior = redis.call('HGET', meta_key(old), 'replayed_as')
  if prior then return {'replayed', prior} end
  return nil
end

-- Mark ``old`` as run again as ``new`` and take it out of ``tenant``'s dead letters.
local function mark_replayed(old, new, tenant)
  local meta = meta_key(old)
  local fresh = redis.call('EXISTS', meta) == 0
  redis.call('HSET', meta, 'replayed_as', new)
  -- a meta hash that had expired before its result lives no longer than the result
  local ttl = redis.call('PTTL', result_key(old))
  if fresh and ttl > 0 then redis.call('PEXPIRE', meta, ttl) end
  if redis.call('ZREM', '${DEAD_LETTERS_PREFIX}' .. tenant, old) == 1 then
    redis.call('ZREM', '${DEAD_BY_QUEUE_PREFIX}' .. (redis.call('HGET', meta, 'queue') or '${DEFAULT_QUEUE}'), old)
  end
end
