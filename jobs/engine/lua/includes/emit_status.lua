--- @include "meta_key"
--- @include "emit_event"

-- A status event for a job whose tenant, type and queue its meta holds.
local function emit_status(id, status, extra)
  local m = redis.call('HMGET', meta_key(id), 'tenant', 'type', 'queue')
  emit_event(m[1] or '${DEFAULT_TENANT}', id, m[2] or '', m[3] or '${DEFAULT_QUEUE}', 'status', status, extra)
end
