local function deleted_key(id) return '${DELETED_PREFIX}' .. id end
