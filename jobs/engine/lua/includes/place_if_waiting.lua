--- @include "arq_queue_key"
--- @include "queue_of"
--- @include "priority_of"
--- @include "tenant_of"
--- @include "place"

-- Place a job again if it still waits in ARQ's queue (a cancelled one does not); true if placed.
local function place_if_waiting(id, now)
  local q = queue_of(id)
  local due = redis.call('ZSCORE', arq_queue_key(q), id)
  if not due then return false end
  place(q, id, tonumber(due), priority_of(id), now, tenant_of(id))
  return true
end
