-- ``count`` of a tenant's jobs at one priority (``ready``: "<tenant>|<priority>") left queue ``q``'s
-- ready set (claimed, cancelled, deleted): its count there goes down (fair_tag), never below zero (jobs
-- placed before they were counted leave too).
local function fair_left(q, ready, count)
  if redis.call('HINCRBY', '${FAIR_PREFIX}' .. q, 'n|' .. ready, -count) < 0 then
    redis.call('HSET', '${FAIR_PREFIX}' .. q, 'n|' .. ready, 0)
  end
end
