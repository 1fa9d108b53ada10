--- @include "meta_key"

local function tenant_of(id)
  return redis.call('HGET', meta_key(id), 'tenant') or '${DEFAULT_TENANT}'
end
