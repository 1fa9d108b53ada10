--- @include "fmt"
--- @include "meta_key"
--- @include "open_key"
--- @include "dependents_key"
--- @include "tenant_of"

-- Record how a job ended (once: a repeated end changes nothing): its outcome, its tenant's count of
-- open jobs, the queue's per-minute counts, and whether dependents wait to be settled.
local function record_outcome(q, id, outcome, now)
  if outcome == '' then return false end
  if redis.call('HSETNX', meta_key(id), 'outcome', outcome) == 0 then return false end
  local open = open_key(tenant_of(id))
  if redis.call('DECR', open) <= 0 then redis.call('DEL', open) end
  local stats = '${STATS_PREFIX}' .. q .. ':' .. math.floor(now / 60000)
  redis.call('HINCRBY', stats, outcome, 1)
  redis.call('EXPIRE', stats, 7200)
  if redis.call('EXISTS', dependents_key(id)) == 1 then
    redis.call('ZADD', '${SETTLING}', fmt(now), id)
    return true
  end
  return false
end
