--- @include "now_ms"
--- @include "kept_key"

-- The tenant's kept jobs and bytes now, after taking off every bucket that has expired (after a long
-- idle stretch, many: none is left behind to refuse a submit that fits). ``now``: the caller's time, if it
-- read it already, else nil: read here.
local function kept_now(tenant, now)
  local key = kept_key(tenant)
  now = now or now_ms()
  repeat
    local due = redis.call('ZRANGEBYSCORE', key .. ':until', '-inf', now, 'LIMIT', 0, 64)
    for _, bucket in ipairs(due) do
      local gone = redis.call('HMGET', key .. ':' .. bucket, 'jobs', 'bytes')
      redis.call('HINCRBY', key, 'jobs', -(tonumber(gone[1]) or 0))
      redis.call('HINCRBY', key, 'bytes', -(tonumber(gone[2]) or 0))
      redis.call('DEL', key .. ':' .. bucket)
      redis.call('ZREM', key .. ':until', bucket)
    end
  until #due < 64
  local totals = redis.call('HMGET', key, 'jobs', 'bytes')
  return tonumber(totals[1]) or 0, tonumber(totals[2]) or 0
end
