local function ready_key(q) return '${READY_PREFIX}' .. q end
