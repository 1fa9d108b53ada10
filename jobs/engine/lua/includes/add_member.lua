-- Add ``id`` with ``score`` to the sorted set ``key``: at once, or, given the placements ``batch`` of a
-- script that writes many jobs, once per set when the script calls write_members(batch) at its end
-- (one ZADD of all a batch's jobs, not one per job; nothing the script reads meanwhile looks there).
local function add_member(batch, key, score, id)
  if not batch then
    redis.call('ZADD', key, score, id)
    return
  end
  local members = batch.members[key]
  if not members then
    members = {}
    batch.members[key] = members
  end
  table.insert(members, score)
  table.insert(members, id)
end
