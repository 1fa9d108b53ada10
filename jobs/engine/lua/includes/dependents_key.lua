local function dependents_key(id) return '${DEPENDENTS_PREFIX}' .. id end
