--- @include "meta_key"
--- @include "add_count"

-- jobsvc counts its own entries in each of ARQ's queues (${ARQ_OWNED}: queue -> count) and marks each
-- in its job's meta (field ${ARQ_ENTRY_FIELD}: the queue it was counted in), changing both in the step
-- that changes the queue, so that ZCARD minus the count is exactly what ARQ's own producers enqueued
-- (arq_differences.lua, jobs.engine.arq_intake). Count a job's entry in its ARQ queue, once (into
-- ``tally``, when given: add_count).
local function count_arq_entry(q, id, tally)
  if redis.call('HSETNX', meta_key(id), '${ARQ_ENTRY_FIELD}', q) == 1 then
    add_count(tally, '${ARQ_OWNED}', q, 1)
  end
end
