-- Write what add_member gathered in the placements ``batch``: one ZADD per sorted set (in chunks of a
-- few hundred members, within what unpack takes).
local function write_members(batch)
  for key, members in pairs(batch.members) do
    for first = 1, #members, 1000 do
      redis.call('ZADD', key, unpack(members, first, math.min(first + 999, #members)))
    end
  end
end
