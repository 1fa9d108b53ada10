--- @include "fmt"
--- @include "meta_key"
--- @include "open_key"
--- @include "dependents_key"
--- @include "emit_event"
--- @include "observe_ms"
--- @include "result_key"
--- @include "job_key"
--- @include "add_kept_bytes"
--- @include "kept_until"

-- Record how a job ended (once: a repeated end changes nothing): its outcome, its listing by it, its
-- tenant's count of open jobs and its kept bytes (what its result keeps, until its records expire), the queue's
-- per-minute counts, the cluster's counters and run times (unless the caller counts them: a worker
-- tallies the ends of its own attempts, jobs.engine.metrics.Tally), its end event, and whether
-- dependents wait to be settled. ``stays``: what of the job stays in Redis, when the caller knows it
-- ({result = its bytes, ttl = ms it lives, -1 for ever}; its record is gone), else nil: read here.
-- ``meta``: the job's meta fields 'outcome', 'tenant', 'type', 'started_at' and 'kept_bytes', in that
-- order, when the caller read them already (HMGET's reply), else nil: read here. ``released_by``: the
-- lease token of the release that ends the job (release_claim.lua), kept with the reply in the meta's
-- ${RELEASED_FIELD} field by the same HSET as the outcome, else nil.
-- Replies 'settle' (recorded, dependents wait), 'ended' (recorded, or no outcome given) or
-- 'ended_earlier' (its end was recorded before).
local function record_outcome(q, id, outcome, now, counted_by_caller, stays, meta, released_by)
  if outcome == '' then return 'ended' end
  local m = meta or redis.call('HMGET', meta_key(id), 'outcome', 'tenant', 'type', 'started_at', 'kept_bytes')
  if m[1] then return 'ended_earlier' end
  local reply = 'ended'
  if redis.call('EXISTS', dependents_key(id)) == 1 then reply = 'settle' end
  if released_by then
    redis.call('HSET', meta_key(id), 'outcome', outcome, '${RELEASED_FIELD}', released_by .. ' ' .. reply)
  else
    redis.call('HSET', meta_key(id), 'outcome', outcome)
  end
  local tenant, jtype, started_at, kept_bytes = m[2] or '${DEFAULT_TENANT}', m[3] or '', m[4], m[5]
  local labels = jtype .. '|' .. q
  if not counted_by_caller then
    count_metric('f|' .. labels .. '|' .. outcome, 1)
    if started_at then observe_ms('r', labels, now - tonumber(started_at)) end
  end
  emit_event(tenant, id, jtype, q, 'status', outcome, nil)
  -- a count at zero stays (a tenant's next job would only write it again), one below (an end counted
  -- without its submit) is set right
  local open = open_key(tenant)
  if redis.call('DECR', open) < 0 then redis.call('SET', open, 0) end
  -- listed by its end status from now on, in creation order as every listing (keys.index_by_status)
  local index = '${INDEX_PREFIX}' .. tenant
  local created = redis.call('ZSCORE', index, id)
  if created then redis.call('ZADD', index .. ':status:' .. outcome, created, id) end
  if kept_bytes then  -- counted in the budget since its submit (kept_key.lua): now what stays, until when
    stays = stays or {result = redis.call('STRLEN', result_key(id)), ttl = redis.call('PTTL', meta_key(id)),
                      lingering = redis.call('STRLEN', job_key(id))}  -- the result lives as the meta does
    local lingering = stays.lingering or 0
    add_kept_bytes(tenant, stays.result + lingering - tonumber(kept_bytes))
    kept_until(tenant, 1, stays.result, stays.ttl, now)
    if lingering > 0 then kept_until(tenant, 0, lingering, redis.call('PTTL', job_key(id)), now) end
  end
  local stats = '${STATS_PREFIX}' .. q .. ':' .. math.floor(now / 60000)
  if redis.call('HINCRBY', stats, outcome, 1) == 1 then redis.call('EXPIRE', stats, 7200) end
  if reply == 'settle' then redis.call('ZADD', '${SETTLING}', fmt(now), id) end
  return reply
end
