--- @include "now_ms"
--- @include "open_key"

-- A tenant's quotas: at most max_open jobs not ended, at most per_s submits a second (an admin's
-- settings for the tenant, else the defaults given). Counts ``n`` submits; nil when allowed, else the
-- refusal: {'over_open', ''} or {'over_rate', ms until the next second}.
local function over_quota(tenant, n, default_open, default_rate)
  local set = redis.call('HMGET', '${TENANT_PREFIX}' .. tenant .. ':quotas', 'max_open_jobs', 'submits_per_s')
  local max_open = tonumber(set[1]) or tonumber(default_open)
  local max_rate = tonumber(set[2]) or tonumber(default_rate)
  if tonumber(redis.call('GET', open_key(tenant)) or '0') + n > max_open then return {'over_open', ''} end
  local now = now_ms()
  local key = '${TENANT_PREFIX}' .. tenant .. ':submits:' .. math.floor(now / 1000)
  local submitted = redis.call('INCRBY', key, n)
  if submitted == n then redis.call('EXPIRE', key, 2) end
  if submitted > max_rate then return {'over_rate', tostring(1000 - now % 1000)} end
  return nil
end
