local function deferred_key(q) return '${DEFERRED_PREFIX}' .. q end
