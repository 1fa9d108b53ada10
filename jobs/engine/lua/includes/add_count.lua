-- Add ``n`` to a counter field of a hash: at once, or, given a ``tally`` (a table a script that
-- writes many jobs fills), once per field when the script calls write_counts(tally) at its end: a
-- batch of a thousand jobs of one type writes a counter once, not a thousand times.
local function add_count(tally, hash, field, n)
  if not tally then
    redis.call('HINCRBY', hash, field, n)
    return
  end
  local fields = tally[hash]
  if not fields then
    fields = {}
    tally[hash] = fields
  end
  fields[field] = (fields[field] or 0) + n
end
