-- Reserve a batch's worth of a tenant's quotas before its jobs are enqueued (submit_many.lua).
--
-- KEYS: none
-- ARGV: [1] tenant, [2] jobs in the batch, [3] the default most open jobs, [4] the default submits per
--       second
-- Replies:
--   {}                               allowed: the submits are counted
--   {'over_open', ''}                the batch would take the tenant past its open jobs
--   {'over_rate', ms to wait}        the batch would take the tenant past its submits this second

--- @include "over_quota"

return over_quota(ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]) or {}
