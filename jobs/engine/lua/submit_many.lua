-- Enqueue a batch's jobs one after the other. Their quotas are reserved already (reserve_quota.lua, for a
-- batch sent as several calls), or reserved here first when ARGV[2] names the tenant (a batch that fits
-- one call: one round trip, not two).
--
-- KEYS: none (each job brings its index keys)
-- ARGV: [1] the jobs, packed (cmsgpack) with their three index keys: {{index keys, packed job}, ...}
--       [2] optional: the tenant whose quotas to reserve for the whole batch, [3] its default quotas,
--       packed (as reserve_quota.lua takes them)
-- Replies a list, one {outcome, detail} per job in order, as submit.lua gives them: {'created', parents
--   waited for}, {'exists', ''}, {'unknown_parent', parent id} or {'parent_<outcome>', parent id}; or,
--   when the quotas refuse the batch, that refusal alone and nothing written (over_quota's: {'over_open',
--   ''}, {'over_rate', ms to wait}, ...)

--- @include "unpack_job"
--- @include "enqueue"
--- @include "write_counts"
--- @include "new_batch"
--- @include "write_batch"
--- @include "now_ms"
--- @include "over_quota"

local items = cmsgpack.unpack(ARGV[1])
local jobs, bytes, used, top = {}, 0, {}, 0
for i, item in ipairs(items) do
  jobs[i] = unpack_job(item[2])
  bytes = bytes + #jobs[i].record
  used[jobs[i].queue] = true
  top = math.max(top, jobs[i].priority)
end
-- the jobs' placements, as one: each set and counter written once, a worker woken once a queue
local batch = new_batch(now_ms())
if ARGV[2] then
  local refused, weight = over_quota(ARGV[2], #items, bytes, ARGV[3], used, top, batch.now)
  if refused then return refused end
  batch.weights[ARGV[2]] = weight
end
local replies, tally = {}, {}
for i, item in ipairs(items) do
  replies[i] = enqueue(jobs[i], item[1], tally, batch)
end
write_counts(tally)
write_batch(batch)
return replies
