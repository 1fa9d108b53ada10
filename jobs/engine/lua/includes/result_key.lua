local function result_key(id) return '${ARQ_RESULT_PREFIX}' .. id end
