--- @include "meta_key"

local function priority_of(id)
  local p = tonumber(redis.call('HGET', meta_key(id), 'priority'))
  if p == nil then return 5 end
  return p
end
