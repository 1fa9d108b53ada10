--- @include "fmt"
--- @include "ready_key"
--- @include "deferred_key"
--- @include "wake"
--- @include "fair_tag"
--- @include "add_member"

-- Put a waiting job where workers find it: ready (and wake a worker) when due, in its tenant's fair
-- turn among the jobs of its priority (fair_tag), else deferred. ``batch``: nil, or the placements table
-- of a script that places many jobs (fair_tag's; ``woken``, the queues it woke a worker for once;
-- ``members``, add_member's).
local function place(q, id, due, priority, now, tenant, batch)
  if due <= now then
    local tag = fair_tag(q, tenant, priority, batch)
    add_member(batch, ready_key(q), fmt((9 - priority) * ${PRIORITY_BAND} + tag), id)
    if not batch then
      wake(q)
    elseif not batch.woken[q] then
      wake(q)
      batch.woken[q] = true
    end
  else
    redis.call('ZADD', deferred_key(q), fmt(due * 10 + (9 - priority)), id)
    -- the queue's timer only ever moves earlier here; when it does, a worker wakes to wait for it
    if redis.call('ZADD', '${TIMERS}', 'LT', 'CH', fmt(due), q) == 1 then wake(q) end
  end
end
