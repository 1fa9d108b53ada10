--- @include "fmt"

-- A job's place among its queue's ready jobs of the same priority: start-time fair queuing between
-- tenants. A tenant's jobs follow each other ${MAX_TENANT_WEIGHT} / weight apart in virtual time, starting
-- no earlier than the queue's virtual time at that priority (the tag of the job claimed last), so the
-- tenants with ready work take turns by weight, whatever their backlogs: a tenant's new job waits
-- behind about one job of each other tenant, not behind their floods. A tenant with no job ready there
-- (idle a while, or its backlog cancelled: ``n|<tenant>|<priority>`` counts them, fair_left.lua counts
-- them out) starts at the queue's virtual time, with no credit saved up and no debt. The weight is
-- the tenant's ``weight`` quota (1 to ${MAX_TENANT_WEIGHT}; 1 unless an operator set it). Replies
-- the tag (the ready score, less the band). ``batch``: nil to write the tenant's clock and ready count
-- at once, or the placements table of a script that places many jobs ({turns = {}, weights = {}}, its
-- ``weights`` maybe holding tenants' weights it read already): the tenant's next jobs there then follow
-- without a read, and write_turns(batch) writes each clock and count once at the end.
local function fair_tag(q, tenant, priority, batch)
  local fair, mine = '${FAIR_PREFIX}' .. q, tenant .. '|' .. priority
  local turns = batch and batch.turns
  local last = turns and turns[fair .. ' ' .. mine]
  if last then  -- placed one of the tenant's jobs here already: this one follows it
    last.tag, last.ready = last.tag + last.step, last.ready + 1
    return last.tag
  end
  local weight = batch and batch.weights[tenant]
  if not weight then
    weight = redis.call('HGET', '${TENANT_PREFIX}' .. tenant .. ':quotas', 'weight') or '1'
    if batch then batch.weights[tenant] = weight end
  end
  local clocks = redis.call('HMGET', fair, mine, '|' .. priority, 'n|' .. mine)
  local own, ready = tonumber(clocks[1]) or 0, math.max(tonumber(clocks[3]) or 0, 0)
  if ready == 0 then own = 0 end
  weight = tonumber(weight) or 1
  local step = math.floor(${MAX_TENANT_WEIGHT} / math.max(1, math.min(weight, ${MAX_TENANT_WEIGHT})))
  local tag = math.max(own, tonumber(clocks[2]) or 0) + step
  if turns then
    turns[fair .. ' ' .. mine] = {fair = fair, mine = mine, tag = tag, ready = ready + 1, step = step}
  else
    redis.call('HSET', fair, mine, fmt(tag), 'n|' .. mine, fmt(ready + 1))
  end
  return tag
end
