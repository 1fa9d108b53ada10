local function running_key(q) return '${RUNNING_PREFIX}' .. q end
