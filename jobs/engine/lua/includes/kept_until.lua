--- @include "fmt"
--- @include "kept_key"

-- ``jobs`` and ``bytes`` the tenant keeps leave its totals once ``ttl_ms`` from ``now`` has passed (the
-- time to live of the records they are; -1: they stay).
local function kept_until(tenant, jobs, bytes, ttl_ms, now)
  if ttl_ms < 0 then return end
  local key = kept_key(tenant)
  local bucket = fmt(math.floor((now + ttl_ms) / ${KEPT_BUCKET_MS}) + 1)
  if jobs ~= 0 then redis.call('HINCRBY', key .. ':' .. bucket, 'jobs', jobs) end
  if redis.call('HINCRBY', key .. ':' .. bucket, 'bytes', bytes) == bytes then  -- a new bucket
    redis.call('ZADD', key .. ':until', fmt(tonumber(bucket) * ${KEPT_BUCKET_MS}), bucket)
  end
end
