--- @include "place_if_waiting"

-- A job left its concurrency slot: free it and let the first parked job that still waits go.
local function release_slot(slot, id, now)
  if slot == '' then return end
  redis.call('ZREM', slot .. ':running', id)
  while true do
    local parked = redis.call('LPOP', slot .. ':parked')
    if not parked or place_if_waiting(parked, now) then return end
  end
end
