-- Reserve a batch's worth of a tenant's quotas before its jobs are enqueued (submit_many.lua).
--
-- KEYS: none
-- ARGV: [1] tenant, [2] jobs in the batch, [3] bytes of their records, [4] the default quotas, packed
--       (jobs.engine.queue_ops.Quotas.packed), [5] their highest priority, [6...] the queues they use
-- Replies:
--   {}                               allowed: the submits are counted
--   {'queue_not_allowed', queue}     the tenant may not use a queue of the batch
--   {'priority_not_allowed', top}    a priority of the batch is above the tenant's highest
--   {'over_open', ''}                the batch would take the tenant past its open jobs
--   {'over_kept_jobs', budget}       the batch would take the tenant past the jobs it may keep
--   {'over_kept_bytes', budget}      the batch would take the tenant past the bytes it may keep
--   {'over_budget', budget}          the batch alone is larger than the bytes the tenant may keep
--   {'over_rate', ms to wait}        the batch would take the tenant past its submits this second

--- @include "over_quota"

local used = {}
for i = 6, #ARGV do used[ARGV[i]] = true end
return over_quota(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], used, tonumber(ARGV[5])) or {}
