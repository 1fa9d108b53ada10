--- @include "fmt"

-- Write the fair-share clocks and ready counts that fair_tag kept in a script's placements ``batch``:
-- once per queue, tenant and priority, however many jobs it placed there.
local function write_turns(batch)
  for _, turn in pairs(batch.turns) do
    redis.call('HSET', turn.fair, turn.mine, fmt(turn.tag), 'n|' .. turn.mine, fmt(turn.ready))
  end
end
