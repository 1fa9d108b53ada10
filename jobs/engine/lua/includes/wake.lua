-- Leave one token in a queue's wake-up list: an idle worker blocked on it looks for work.
local function wake(q)
  local key = '${WAKE_PREFIX}' .. q
  if redis.call('LLEN', key) == 0 then redis.call('RPUSH', key, '1') end
end
