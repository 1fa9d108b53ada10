--- @include "meta_key"

local function queue_of(id)
  local q = redis.call('HGET', meta_key(id), 'queue')
  if not q then return '${DEFAULT_QUEUE}' end
  return q
end
