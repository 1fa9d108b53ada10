--- @include "fmt"
--- @include "open_key"
--- @include "write_turns"
--- @include "write_members"

-- Write what a script's placements ``batch`` gathered (new_batch): the fair-share turns, the sorted sets'
-- new members, and each tenant's new open jobs (a tenant is known from its first: tenant_store).
local function write_batch(batch)
  write_turns(batch)
  write_members(batch)
  for tenant, n in pairs(batch.opened) do
    if redis.call('INCRBY', open_key(tenant), n) == n then
      redis.call('ZADD', '${TENANTS}', 'NX', fmt(batch.now), tenant)
    end
  end
end
