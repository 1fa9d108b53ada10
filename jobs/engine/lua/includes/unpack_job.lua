-- One job's arguments, as ``jobs.engine.queue_ops.EnqueueCall.packed`` packs them (cmsgpack, all
-- strings): id, record, due, job ttl, meta ttl, created, queue, priority, tenant, type, #parents,
-- parents..., then more meta field/value pairs. Packed into one argument, a job costs one argument to
-- send, not twenty.
local function unpack_job(packed)
  local v = cmsgpack.unpack(packed)
  local a = {id = v[1], record = v[2], due = tonumber(v[3]), job_ttl = v[4], meta_ttl = v[5], created = v[6],
             queue = v[7], priority = tonumber(v[8]), tenant = v[9], type = v[10], parents = {}, meta = {}}
  local n = tonumber(v[11])
  for i = 1, n do table.insert(a.parents, v[11 + i]) end
  for i = 12 + n, #v do table.insert(a.meta, v[i]) end
  return a
end
