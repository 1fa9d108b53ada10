-- Take in the jobs ARQ's own producers enqueued (find_foreign.lua), as jobs.engine.arq_intake judged
-- them, each only if it still waits in its ARQ queue, uncounted, with the record it was judged by:
--   adopt   rewritten as jobsvc's own job (enqueue.lua), keeping its id, due time and record TTL, within
--           its tenant's quotas
--   fail    ended now as a failed job of its tenant: result, meta, listings, dead letters
--   refuse  ended now with ARQ's result record only (an id jobsvc's keys may not hold, or an ARQ queue
--           jobsvc does not have)
--
-- KEYS: none
-- ARGV: [1] the default quotas, packed (over_quota; '' to leave them unchecked), [2] the queue whose
--       difference to reply ('' for none), [3] the jobs, packed (cmsgpack): {{action,
--       id, queue, ARQ queue key, record judged ('' for none), packed job (adopt) or result record,
--       result ttl ms, dead letter ms, {index keys}, {meta field, value, ...}, created ms}, ...}
-- Replies: {{outcome per job}, difference}
--   outcomes: 'adopted', 'failed', 'refused', 'changed' (no longer what was judged: left alone),
--             or over_quota's refusal ('over_open', 'over_rate', ...: held back by the tenant's quota,
--             left waiting)
--   difference: ZCARD minus jobsvc's count in ARGV[2]'s ARQ queue, after these (0 for none)

--- @include "fmt"
--- @include "now_ms"
--- @include "meta_key"
--- @include "job_key"
--- @include "result_key"
--- @include "open_key"
--- @include "arq_queue_key"
--- @include "tenant_of"
--- @include "unpack_job"
--- @include "over_quota"
--- @include "enqueue"
--- @include "record_outcome"

local function unchanged(key, id, judged)
  if not redis.call('ZSCORE', key, id) then return false end
  if redis.call('HEXISTS', meta_key(id), '${ARQ_ENTRY_FIELD}') == 1 then return false end
  return (redis.call('GET', job_key(id)) or '') == judged
end

local function adopt(key, id, packed, index_keys)
  local a = unpack_job(packed)
  if ARGV[1] ~= '' then
    local refused = over_quota(a.tenant, 1, #a.record, ARGV[1], {[a.queue] = true}, a.priority)
    if refused then return refused[1] end
  end
  local ttl = redis.call('PTTL', job_key(id))
  if ttl > 0 then
    a.meta_ttl = fmt(ttl + tonumber(a.meta_ttl) - tonumber(a.job_ttl))
    a.job_ttl = ttl
  end
  a.due = tonumber(redis.call('ZSCORE', key, id))
  a.adopted = true
  redis.call('DEL', meta_key(id))  -- what an ended job with the same id left behind
  enqueue(a, index_keys)
  return 'adopted'
end

local function fail(id, q, item, now)
  local created = item[11]
  redis.call('DEL', meta_key(id))
  redis.call('HSET', meta_key(id), unpack(item[10]))
  local tenant = tenant_of(id)
  redis.call('INCR', open_key(tenant))  -- as a submit would; record_outcome counts the end
  redis.call('ZADD', '${TENANTS}', 'NX', created, tenant)
  for _, index in ipairs(item[9]) do redis.call('ZADD', index, created, id) end
  redis.call('ZADD', '${DEAD_LETTERS_PREFIX}' .. tenant, fmt(now), id)
  redis.call('PEXPIRE', result_key(id), item[8])
  redis.call('PEXPIRE', meta_key(id), item[8])
  record_outcome(q, id, 'failed', now, false)
end

local outcomes = {}
local now = now_ms()
for i, item in ipairs(cmsgpack.unpack(ARGV[3])) do
  local action, id, q, key = item[1], item[2], item[3], item[4]
  if not unchanged(key, id, item[5]) then
    outcomes[i] = 'changed'
  elseif action == 'adopt' then
    outcomes[i] = adopt(key, id, item[6], item[9])
  else
    redis.call('DEL', job_key(id))
    redis.call('ZREM', key, id)
    redis.call('ZREM', '${ABORT_SET}', id)
    redis.call('SET', result_key(id), item[6], 'PX', item[7])
    if action == 'fail' then
      fail(id, q, item, now)
      outcomes[i] = 'failed'
    else
      outcomes[i] = 'refused'
    end
  end
end
local difference = 0
if ARGV[2] ~= '' then
  local owned = tonumber(redis.call('HGET', '${ARQ_OWNED}', ARGV[2]) or '0')
  difference = redis.call('ZCARD', arq_queue_key(ARGV[2])) - owned
end
return {outcomes, difference}
