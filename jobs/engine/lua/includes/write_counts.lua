-- Write what add_count gathered in ``tally``: one HINCRBY per counter field.
local function write_counts(tally)
  for hash, fields in pairs(tally) do
    for field, n in pairs(fields) do redis.call('HINCRBY', hash, field, n) end
  end
end
