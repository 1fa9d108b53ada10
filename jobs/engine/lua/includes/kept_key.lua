-- What a tenant keeps in Redis, against its storage budget (jobs.engine.keys.tenant_kept): a job counts
-- from its submit (one job, its record's bytes) until its records expire after it ends (its result's
-- bytes by then). Expiry is not an event a script sees: an ended job's amounts go into the bucket of
-- the moment its records expire, and the buckets past are taken off the totals when next read.
local function kept_key(tenant) return '${TENANT_PREFIX}' .. tenant .. ':kept' end
