local function meta_key(id) return '${JOB_META_PREFIX}' .. id end
