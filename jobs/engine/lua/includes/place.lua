--- @include "fmt"
--- @include "ready_key"
--- @include "deferred_key"
--- @include "wake"

-- Put a waiting job where workers find it: ready (and wake a worker) when due, else deferred.
local function place(q, id, due, priority, now)
  if due <= now then
    local seq = redis.call('INCR', '${READY_SEQUENCE}')
    redis.call('ZADD', ready_key(q), fmt((9 - priority) * ${PRIORITY_BAND} + seq), id)
    wake(q)
  else
    redis.call('ZADD', deferred_key(q), fmt(due * 10 + (9 - priority)), id)
    -- the queue's timer only ever moves earlier here; when it does, a worker wakes to wait for it
    if redis.call('ZADD', '${TIMERS}', 'LT', 'CH', fmt(due), q) == 1 then wake(q) end
  end
end
