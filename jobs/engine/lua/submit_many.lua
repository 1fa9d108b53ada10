-- Enqueue a batch's jobs one after the other, their quotas reserved already (reserve_quota.lua). A
-- batch's jobs in one argument: a thousand cost what one costs to send.
--
-- KEYS: none (each job brings its index keys)
-- ARGV: [1] the jobs, packed (cmsgpack) with their three index keys: {{index keys, packed job}, ...}
-- Replies a list, one {outcome, detail} per job in order, as submit.lua gives them: {'created', parents
--   waited for}, {'exists', ''}, {'unknown_parent', parent id} or {'parent_<outcome>', parent id}

--- @include "unpack_job"
--- @include "enqueue"
--- @include "write_counts"

local replies, tally = {}, {}
for i, item in ipairs(cmsgpack.unpack(ARGV[1])) do
  replies[i] = enqueue(unpack_job(item[2]), item[1], tally)
end
write_counts(tally)
return replies
