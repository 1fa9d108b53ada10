--- @include "now_ms"
--- @include "open_key"
--- @include "kept_now"

-- A tenant's policy, quotas and storage budget: only the queues it may use (``queues``: ",a,b,"; unset:
-- all) and priorities up to its max_priority; at most max_open jobs not ended, per_s submits a second,
-- and kept_jobs jobs and kept_bytes bytes kept (kept_key.lua), each an admin's setting for the tenant,
-- else the default in ``quotas`` (jobs.engine.queue_ops.Quotas.packed: "max_open per_s kept_jobs
-- kept_bytes"). Counts ``n`` submits of ``bytes`` bytes of records into the queues ``used`` (a set),
-- the highest at priority ``top``; nil when allowed, else the refusal: {'queue_not_allowed', queue},
-- {'priority_not_allowed', the tenant's highest}, {'over_open', ''}, {'over_kept_jobs', the budget},
-- {'over_kept_bytes', the budget}, {'over_budget', the budget} (the submit alone is larger than the
-- tenant's bytes budget) or {'over_rate', ms until the next second}; when allowed, also the tenant's
-- fair-share weight, read with its quotas (fair_tag's). ``now``: the caller's time, if it read it already.
local function over_quota(tenant, n, bytes, quotas, used, top, now)
  now = now or now_ms()
  local default = {}
  for value in string.gmatch(quotas, '%d+') do table.insert(default, value) end
  local set = redis.call('HMGET', '${TENANT_PREFIX}' .. tenant .. ':quotas', 'max_open_jobs',
                         'submits_per_s', 'max_kept_jobs', 'max_kept_bytes', 'queues', 'max_priority',
                         'weight')
  if set[5] then
    for q in pairs(used) do
      if not string.find(set[5], ',' .. q .. ',', 1, true) then return {'queue_not_allowed', q} end
    end
  end
  if set[6] and top > tonumber(set[6]) then return {'priority_not_allowed', set[6]} end
  local max_open = tonumber(set[1] or default[1])
  local max_rate = tonumber(set[2] or default[2])
  local max_jobs = tonumber(set[3] or default[3])
  local max_bytes = tonumber(set[4] or default[4])
  if bytes > max_bytes then return {'over_budget', tostring(max_bytes)} end
  if tonumber(redis.call('GET', open_key(tenant)) or '0') + n > max_open then return {'over_open', ''} end
  local jobs, kept_bytes = kept_now(tenant, now)
  if jobs + n > max_jobs then return {'over_kept_jobs', tostring(max_jobs)} end
  if kept_bytes + bytes > max_bytes then return {'over_kept_bytes', tostring(max_bytes)} end
  local key = '${TENANT_PREFIX}' .. tenant .. ':submits:' .. math.floor(now / 1000)
  local submitted = redis.call('INCRBY', key, n)
  if submitted == n then redis.call('EXPIRE', key, 2) end
  if submitted > max_rate then return {'over_rate', tostring(1000 - now % 1000)} end
  return nil, set[7] or '1'
end
