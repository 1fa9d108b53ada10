-- The placements table of a script that writes many jobs (enqueue, place, fair_tag, add_member): what
-- they gather to write once at the script's end (write_batch), and ``now``, the time they share.
local function new_batch(now)
  return {turns = {}, weights = {}, woken = {}, members = {}, opened = {}, now = now}
end
