--- @include "fmt"

-- A job's place among its queue's ready jobs of the same priority: start-time fair queuing between
-- tenants. A tenant's jobs follow each other ${MAX_TENANT_WEIGHT} / weight apart in virtual time, starting
-- no earlier than the queue's virtual time at that priority (the tag of the job claimed last), so the
-- tenants with ready work take turns by weight, whatever their backlogs: a tenant's new job waits
-- behind about one job of each other tenant, not behind their floods. A tenant with no job ready there
-- (idle a while, or its backlog cancelled: ``n|<tenant>|<priority>`` counts them, fair_left.lua counts
-- them out) starts at the queue's virtual time, with no credit saved up and no debt. The weight is
-- the tenant's ``weight`` quota (1 to ${MAX_TENANT_WEIGHT}; 1 unless an operator set it). Replies
-- the tag (the ready score, less the band).
local function fair_tag(q, tenant, priority)
  local fair = '${FAIR_PREFIX}' .. q
  local weight = tonumber(redis.call('HGET', '${TENANT_PREFIX}' .. tenant .. ':quotas', 'weight')) or 1
  local mine = tenant .. '|' .. priority
  local clocks = redis.call('HMGET', fair, mine, '|' .. priority, 'n|' .. mine)
  local own, ready = tonumber(clocks[1]) or 0, tonumber(clocks[3]) or 0
  if ready <= 0 then own = 0 end
  local step = math.floor(${MAX_TENANT_WEIGHT} / math.max(1, math.min(weight, ${MAX_TENANT_WEIGHT})))
  local tag = math.max(own, tonumber(clocks[2]) or 0) + step
  redis.call('HSET', fair, mine, fmt(tag), 'n|' .. mine, fmt(math.max(ready, 0) + 1))
  return tag
end
