--- @include "meta_key"
--- @include "job_key"

-- The parents a new job of ``tenant`` would wait for, or a refusal: {'unknown_parent', id} for one
-- that is not the tenant's waiting, running or finished job, {'parent_<outcome>', id} for one that
-- failed or was cancelled.
local function parents_pending(tenant, parents)
  local pending = {}
  for _, parent in ipairs(parents) do
    local outcome = redis.call('HGET', meta_key(parent), 'outcome')
    local owner = redis.call('HGET', meta_key(parent), 'tenant') or '${DEFAULT_TENANT}'
    if owner ~= tenant then return nil, {'unknown_parent', parent} end
    if not outcome then
      if redis.call('EXISTS', job_key(parent)) == 0 then return nil, {'unknown_parent', parent} end
      table.insert(pending, parent)
    elseif outcome ~= 'succeeded' then
      return nil, {'parent_' .. outcome, parent}
    end
  end
  return pending, nil
end
