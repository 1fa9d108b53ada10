--- @include "fmt"
--- @include "meta_key"
--- @include "open_key"
--- @include "dependents_key"
--- @include "emit_event"
--- @include "observe_ms"

-- Record how a job ended (once: a repeated end changes nothing): its outcome, its tenant's count of
-- open jobs, the queue's per-minute counts, the cluster's counters and run times (unless the caller
-- counts them: a worker tallies the ends of its own attempts, jobs.engine.metrics.Tally), its end
-- event, and whether dependents wait to be settled. Replies 'settle' (recorded, dependents wait),
-- 'ended' (recorded, or no outcome given) or 'ended_earlier' (its end was recorded before).
local function record_outcome(q, id, outcome, now, counted_by_caller)
  if outcome == '' then return 'ended' end
  if redis.call('HSETNX', meta_key(id), 'outcome', outcome) == 0 then return 'ended_earlier' end
  local m = redis.call('HMGET', meta_key(id), 'tenant', 'type', 'started_at')
  local tenant, labels = m[1] or '${DEFAULT_TENANT}', (m[2] or '') .. '|' .. q
  if not counted_by_caller then
    count_metric('f|' .. labels .. '|' .. outcome, 1)
    if m[3] then observe_ms('r', labels, now - tonumber(m[3])) end
  end
  emit_event(tenant, id, m[2] or '', q, 'status', outcome, nil)
  local open = open_key(tenant)
  if redis.call('DECR', open) <= 0 then redis.call('DEL', open) end
  local stats = '${STATS_PREFIX}' .. q .. ':' .. math.floor(now / 60000)
  redis.call('HINCRBY', stats, outcome, 1)
  redis.call('EXPIRE', stats, 7200)
  if redis.call('EXISTS', dependents_key(id)) == 1 then
    redis.call('ZADD', '${SETTLING}', fmt(now), id)
    return 'settle'
  end
  return 'ended'
end
