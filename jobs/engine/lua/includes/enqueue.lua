--- @include "fmt"
--- @include "now_ms"
--- @include "meta_key"
--- @include "job_key"
--- @include "result_key"
--- @include "arq_queue_key"
--- @include "dependents_key"
--- @include "open_key"
--- @include "parents_pending"
--- @include "place"
--- @include "emit_event"
--- @include "add_count"
--- @include "count_arq_entry"
--- @include "kept_key"
--- @include "add_member"

-- Write one job (``a``, as ``unpack_job`` gives it): ARQ's record and queue entry, jobsvc's meta and
-- indexes (``index_keys``), and its place in line, or in its parents' lists of dependents. Replies
-- {'created', parents waited for}, {'exists', ''} (its id is taken), or the parents' refusal. With
-- ``a.adopted``, the job is one of ARQ's own producers' (adopt_foreign.lua): its id is its own already.
-- ``tally``: nil to write the counters at once, or a batch's table of them (add_count). ``batch``: nil,
-- or the placements table of a script that places many jobs (place; its ``now``, read once; its
-- ``opened``, each tenant's new open jobs, counted by the script at its end).
local function enqueue(a, index_keys, tally, batch)
  local id = a.id
  local now = batch and batch.now or now_ms()
  if not a.adopted and redis.call('EXISTS', job_key(id), result_key(id)) > 0 then return {'exists', ''} end
  local pending, refused = parents_pending(a.tenant, a.parents)
  if refused then return refused end
  -- a dependent's records live as long as its parents' and its own expiry after (its clock starts when
  -- they end: settle_dependents.lua makes it due then)
  local longest = 0
  for _, parent in ipairs(pending) do longest = math.max(longest, redis.call('PTTL', job_key(parent))) end
  a.job_ttl = tonumber(a.job_ttl) + longest
  a.meta_ttl = tonumber(a.meta_ttl) + longest
  redis.call('PSETEX', job_key(id), a.job_ttl, a.record)
  add_member(batch, arq_queue_key(a.queue), fmt(a.due), id)
  if #pending > 0 then  -- settle_dependents.lua counts them down
    table.insert(a.meta, 'waiting_for')
    table.insert(a.meta, #pending)
  end
  -- a new job's meta is new: its ARQ queue entry is marked counted in the same HSET (count_arq_entry)
  if not a.adopted then
    table.insert(a.meta, '${ARQ_ENTRY_FIELD}')
    table.insert(a.meta, a.queue)
  end
  redis.call('HSET', meta_key(id), 'type', a.type, 'queue', a.queue, 'priority', a.priority,
             'tenant', a.tenant, 'kept_bytes', #a.record, unpack(a.meta))
  if a.adopted then
    count_arq_entry(a.queue, id, tally)
  else
    add_count(tally, '${ARQ_OWNED}', a.queue, 1)
  end
  if #pending > 0 then
    for _, parent in ipairs(pending) do
      redis.call('SADD', dependents_key(parent), id)
      if redis.call('PTTL', dependents_key(parent)) < tonumber(a.meta_ttl) then
        redis.call('PEXPIRE', dependents_key(parent), a.meta_ttl)
      end
    end
  else
    place(a.queue, id, a.due, a.priority, now, a.tenant, batch)
  end
  redis.call('PEXPIRE', meta_key(id), a.meta_ttl)
  if batch then
    batch.opened[a.tenant] = (batch.opened[a.tenant] or 0) + 1
  elseif redis.call('INCR', open_key(a.tenant)) == 1 then  -- known since its first job (tenant_store)
    redis.call('ZADD', '${TENANTS}', 'NX', a.created, a.tenant)
  end
  for _, index in ipairs(index_keys) do add_member(batch, index, a.created, id) end
  local status = 'queued'
  if #pending == 0 and a.due > now then status = 'deferred' end
  emit_event(a.tenant, id, a.type, a.queue, 'status', status, nil)
  add_count(tally, '${METRICS}', 's|' .. a.type .. '|' .. a.queue, 1)
  add_count(tally, kept_key(a.tenant), 'jobs', 1)
  add_count(tally, kept_key(a.tenant), 'bytes', #a.record)
  return {'created', tostring(#pending)}
end
