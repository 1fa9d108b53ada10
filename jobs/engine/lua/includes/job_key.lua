local function job_key(id) return '${ARQ_JOB_PREFIX}' .. id end
