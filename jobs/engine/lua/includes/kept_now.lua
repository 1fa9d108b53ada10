--- @include "now_ms"
--- @include "kept_key"

-- The tenant's kept jobs and bytes now, after taking off the buckets that have expired.
local function kept_now(tenant)
  local key = kept_key(tenant)
  for _, bucket in ipairs(redis.call('ZRANGEBYSCORE', key .. ':until', '-inf', now_ms(), 'LIMIT', 0, 64)) do
    local gone = redis.call('HMGET', key .. ':' .. bucket, 'jobs', 'bytes')
    redis.call('HINCRBY', key, 'jobs', -(tonumber(gone[1]) or 0))
    redis.call('HINCRBY', key, 'bytes', -(tonumber(gone[2]) or 0))
    redis.call('DEL', key .. ':' .. bucket)
    redis.call('ZREM', key .. ':until', bucket)
  end
  local totals = redis.call('HMGET', key, 'jobs', 'bytes')
  return tonumber(totals[1]) or 0, tonumber(totals[2]) or 0
end
