--- @include "meta_key"
--- @include "fair_left"

-- One job left queue ``q``'s ready set: its tenant and priority read from its meta.
local function fair_left_job(q, id)
  local m = redis.call('HMGET', meta_key(id), 'tenant', 'priority')
  fair_left(q, (m[1] or '${DEFAULT_TENANT}') .. '|' .. (m[2] or '5'), 1)
end
