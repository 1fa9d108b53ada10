--- @include "kept_key"

-- Add ``bytes`` (negative: take them off) to what the tenant keeps.
local function add_kept_bytes(tenant, bytes)
  if bytes ~= 0 then redis.call('HINCRBY', kept_key(tenant), 'bytes', bytes) end
end
