local function retry_key(id) return '${ARQ_RETRY_PREFIX}' .. id end
