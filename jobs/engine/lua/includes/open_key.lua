local function open_key(tenant) return '${TENANT_PREFIX}' .. tenant .. ':open' end
