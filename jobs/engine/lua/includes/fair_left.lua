--- @include "meta_key"

-- A job left queue ``q``'s ready set (claimed, cancelled, deleted): its tenant has one fewer there at
-- its priority (fair_tag). Reads the tenant and priority from the job's meta.
local function fair_left(q, id)
  local m = redis.call('HMGET', meta_key(id), 'tenant', 'priority')
  local ready = (m[1] or '${DEFAULT_TENANT}') .. '|' .. (m[2] or '5')
  if redis.call('HINCRBY', '${FAIR_PREFIX}' .. q, 'n|' .. ready, -1) < 0 then
    redis.call('HSET', '${FAIR_PREFIX}' .. q, 'n|' .. ready, 0)  -- jobs placed before it was counted
  end
end
