local function in_progress_key(id) return '${ARQ_IN_PROGRESS_PREFIX}' .. id end
