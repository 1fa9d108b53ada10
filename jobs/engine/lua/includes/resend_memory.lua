-- The memory of recent replies, for a request sent again (redis-py resends a command whose connection
-- dropped): ``prefix`` names one hash per stretch of ${RESEND_MEMORY_MS} ms (keys.releases_remembered,
-- keys.claims_remembered), which expires one stretch after its own ends, so a reply is kept from one to
-- two stretches, and the server expires one key a stretch, not one a request.

-- Keep ``value`` for ``field`` (``now``: the script's time, ms).
local function remember(prefix, field, value, now)
  local stretch = math.floor(now / ${RESEND_MEMORY_MS})
  local key = prefix .. stretch
  redis.call('HSET', key, field, value)
  redis.call('PEXPIREAT', key, (stretch + 2) * ${RESEND_MEMORY_MS})
end

-- What was kept for ``field`` in this stretch or the one before, else false.
local function recall(prefix, field, now)
  local stretch = math.floor(now / ${RESEND_MEMORY_MS})
  return redis.call('HGET', prefix .. stretch, field) or redis.call('HGET', prefix .. (stretch - 1), field)
end
