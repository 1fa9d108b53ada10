"""The server-side scripts that move jobs between queues: enqueue, claim, renew, release, settle, cancel.

Each runs atomically inside Redis, so the queues stay consistent however many APIs and workers race,
and each costs one round trip. Keys a script builds from job ids come from ``jobs.engine.keys`` through the
Lua helpers below, so key names still live in one place.

How a job moves (``q`` is its queue)::

    submit ──> waiting for parents ──(all succeeded)──┐
       │                                              v
       ├──> deferred:q (due later) ──(due)──> ready:q (priority, then arrival) ──(claim)──> running:q
       │                                         ^  │                                     │   │
       └─────────────────────────────────────────┘  └─(over a limit)─> parked / deferred   │   │
                 retry, hand-back, lapsed lease <────────────────────────────────────────────┘   │
                                                                    ended (result written) <─────┘

ARQ's own queue (``arq:queue``) holds the job, scored by its due time, from submit to end, as ARQ
would: ARQ's ``Job`` reads its status from there.
"""

from __future__ import annotations

from arq.constants import default_queue_name, job_key_prefix, result_key_prefix, retry_key_prefix

from jobs.engine import keys

#: how long ARQ's run_job keeps a job's attempt counter (``arq:retry:<id>``), hard-coded there
ARQ_RETRY_TTL_S = 88_400

#: width of one priority band in the ready set's scores (2**44 arrivals per band before they mix)
PRIORITY_BAND = 2**44


def _prefix(build: object) -> str:
    """The part of a key-building function's output before the id, e.g. ``jobsvc:ready:``."""
    assert callable(build)
    marker = "\x00"
    key = build(marker)
    assert isinstance(key, str)
    assert key.endswith(marker)
    return key[: -len(marker)]


_LIBRARY = f"""
local BAND = {PRIORITY_BAND}
local ARQ_RETRY_TTL_S = {ARQ_RETRY_TTL_S}
local function fmt(n) return string.format('%.0f', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function meta_key(id) return '{keys.JOB_META_PREFIX}' .. id end
local function job_key(id) return '{job_key_prefix}' .. id end
local function result_key(id) return '{result_key_prefix}' .. id end
local function retry_key(id) return '{retry_key_prefix}' .. id end
local function in_progress_key(id) return '{keys.ARQ_IN_PROGRESS_PREFIX}' .. id end
local function arq_queue_key(q)
  if q == '{keys.DEFAULT_QUEUE}' then return '{default_queue_name}' end
  return '{default_queue_name}:' .. q
end
local function ready_key(q) return '{_prefix(keys.ready)}' .. q end
local function deferred_key(q) return '{_prefix(keys.deferred)}' .. q end
local function running_key(q) return '{_prefix(keys.running)}' .. q end
local function wake_key(q) return '{_prefix(keys.wake)}' .. q end
local function dependents_key(id) return '{keys.DEPENDENTS_PREFIX}' .. id end
local function limit_key(name) return '{keys.LIMIT_PREFIX}' .. name end
local function stats_key(q, minute) return '{keys.STATS_PREFIX}' .. q .. ':' .. minute end
local function schedule_key(name) return '{_prefix(keys.schedule_state)}' .. name end
local function dead_key(tenant) return '{keys.DEAD_LETTERS_PREFIX}' .. tenant end
local function open_key(tenant) return '{keys.TENANT_PREFIX}' .. tenant .. ':open' end
local function quotas_key(tenant) return '{keys.TENANT_PREFIX}' .. tenant .. ':quotas' end
local function rate_key(tenant, second) return '{keys.TENANT_PREFIX}' .. tenant .. ':submits:' .. second end
local function deleted_key(id) return '{_prefix(keys.deleted)}' .. id end
local TENANTS = '{keys.TENANTS}'
local DEFAULT_TENANT = '{keys.DEFAULT_TENANT}'
local SEQUENCE = '{keys.READY_SEQUENCE}'
local SETTLING = '{keys.SETTLING}'
local TIMERS = '{keys.TIMERS}'
local ABORTS = '{keys.ABORT_SET}'

local function priority_of(id)
  local p = tonumber(redis.call('HGET', meta_key(id), 'priority'))
  if p == nil then return 5 end
  return p
end

local function tenant_of(id)
  return redis.call('HGET', meta_key(id), 'tenant') or DEFAULT_TENANT
end

local function queue_of(id)
  local q = redis.call('HGET', meta_key(id), 'queue')
  if not q then return '{keys.DEFAULT_QUEUE}' end
  return q
end

-- Leave one token in a queue's wake-up list: an idle worker blocked on it looks for work.
local function wake(q)
  if redis.call('LLEN', wake_key(q)) == 0 then redis.call('RPUSH', wake_key(q), '1') end
end

-- Put a waiting job where workers find it: ready (and wake a worker) when due, else deferred.
local function place(q, id, due, priority, now)
  if due <= now then
    local seq = redis.call('INCR', SEQUENCE)
    redis.call('ZADD', ready_key(q), fmt((9 - priority) * BAND + seq), id)
    wake(q)
  else
    redis.call('ZADD', deferred_key(q), fmt(due * 10 + (9 - priority)), id)
    -- the queue's timer only ever moves earlier here; when it does, a worker wakes to wait for it
    if redis.call('ZADD', TIMERS, 'LT', 'CH', fmt(due), q) == 1 then wake(q) end
  end
end

-- Place a job again if it still waits in ARQ's queue (a cancelled one does not); true if placed.
local function place_if_waiting(id, now)
  local q = queue_of(id)
  local due = redis.call('ZSCORE', arq_queue_key(q), id)
  if not due then return false end
  place(q, id, tonumber(due), priority_of(id), now)
  return true
end

-- A job left its concurrency slot: free it and let the first parked job that still waits go.
local function release_slot(slot, id, now)
  if slot == '' then return end
  redis.call('ZREM', slot .. ':running', id)
  while true do
    local parked = redis.call('LPOP', slot .. ':parked')
    if not parked or place_if_waiting(parked, now) then return end
  end
end

-- Record how a job ended (once: a repeated end changes nothing): its outcome, its tenant's count of
-- open jobs, the queue's per-minute counts, and whether dependents wait to be settled.
local function record_outcome(q, id, outcome, now)
  if outcome == '' then return false end
  if redis.call('HSETNX', meta_key(id), 'outcome', outcome) == 0 then return false end
  local open = open_key(tenant_of(id))
  if redis.call('DECR', open) <= 0 then redis.call('DEL', open) end
  local stats = stats_key(q, math.floor(now / 60000))
  redis.call('HINCRBY', stats, outcome, 1)
  redis.call('EXPIRE', stats, 7200)
  if redis.call('EXISTS', dependents_key(id)) == 1 then
    redis.call('ZADD', SETTLING, fmt(now), id)
    return true
  end
  return false
end
"""

_ENQUEUE = """
-- Write one job: ARQ's record and queue entry, jobsvc's meta and indexes, and its place in line.
-- a: id, record, due, job ttl ms, meta ttl ms, created, queue, priority, parents (list), meta pairs
-- The parents a new job of ``tenant`` would wait for, or a refusal: {'unknown_parent', id} for one
-- that is not the tenant's waiting, running or finished job, {'parent_<outcome>', id} for one that
-- failed or was cancelled.
local function check_parents(tenant, parents)
  local pending = {}
  for _, parent in ipairs(parents) do
    local outcome = redis.call('HGET', meta_key(parent), 'outcome')
    local owner = redis.call('HGET', meta_key(parent), 'tenant') or DEFAULT_TENANT
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

local function enqueue(a, index_keys)
  local id = a.id
  local now = now_ms()
  if redis.call('EXISTS', job_key(id), result_key(id)) > 0 then return {'exists', ''} end
  local pending, refused = check_parents(a.tenant, a.parents)
  if refused then return refused end
  redis.call('PSETEX', job_key(id), a.job_ttl, a.record)
  redis.call('ZADD', arq_queue_key(a.queue), fmt(a.due), id)
  redis.call('HSET', meta_key(id), 'type', a.type, 'queue', a.queue, 'priority', a.priority,
             'tenant', a.tenant, unpack(a.meta))
  if #pending > 0 then
    redis.call('HSET', meta_key(id), 'waiting_for', #pending)
    for _, parent in ipairs(pending) do
      redis.call('SADD', dependents_key(parent), id)
      if redis.call('PTTL', dependents_key(parent)) < tonumber(a.meta_ttl) then
        redis.call('PEXPIRE', dependents_key(parent), a.meta_ttl)
      end
    end
  else
    place(a.queue, id, a.due, a.priority, now)
  end
  redis.call('PEXPIRE', meta_key(id), a.meta_ttl)
  redis.call('INCR', open_key(a.tenant))
  redis.call('ZADD', TENANTS, 'NX', a.created, a.tenant)
  for _, index in ipairs(index_keys) do redis.call('ZADD', index, a.created, id) end
  return {'created', tostring(#pending)}
end

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

-- A tenant's quotas: at most max_open jobs not ended, at most per_s submits a second (an admin's
-- settings for the tenant, else the defaults given). Counts ``n`` submits; nil when allowed, else the
-- refusal: {'over_open', ''} or {'over_rate', ms until the next second}.
local function over_quota(tenant, n, default_open, default_rate)
  local set = redis.call('HMGET', quotas_key(tenant), 'max_open_jobs', 'submits_per_s')
  local max_open = tonumber(set[1]) or tonumber(default_open)
  local max_rate = tonumber(set[2]) or tonumber(default_rate)
  if tonumber(redis.call('GET', open_key(tenant)) or '0') + n > max_open then return {'over_open', ''} end
  local now = now_ms()
  local key = rate_key(tenant, math.floor(now / 1000))
  local submitted = redis.call('INCRBY', key, n)
  if submitted == n then redis.call('EXPIRE', key, 2) end
  if submitted > max_rate then return {'over_rate', tostring(1000 - now % 1000)} end
  return nil
end
"""

#: KEYS: index all, index type, index queue, idempotency. ARGV: idempotency value, its ttl ms, check the
#: quotas (0/1), the default most open jobs, the default submits per second, the packed job.
SUBMIT = (
    _LIBRARY
    + _ENQUEUE
    + """
if ARGV[1] ~= '' then
  local prior = redis.call('GET', KEYS[4])
  if prior then return {'duplicate', prior} end
end
local job = unpack_job(ARGV[6])
if ARGV[3] == '1' then
  local refused = over_quota(job.tenant, 1, ARGV[4], ARGV[5])
  if refused then return refused end
end
local outcome = enqueue(job, {KEYS[1], KEYS[2], KEYS[3]})
if outcome[1] == 'created' and ARGV[1] ~= '' then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2]) end
return outcome
"""
)

#: KEYS: index all, index type, index queue. ARGV: schedule name, tick ms, may overlap (0/1), the packed
#: job.
#: Enqueues the schedule's job for one tick exactly once, however many workers try; without overlap, a
#: tick whose previous run still waits or runs is skipped.
SCHEDULE_TICK = (
    _LIBRARY
    + _ENQUEUE
    + """
local state = schedule_key(ARGV[1])
local tick = tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', state, 'tick') or '0')
if tick <= last then return {'taken', ''} end
redis.call('HSET', state, 'tick', ARGV[2])
if ARGV[3] == '0' then
  local previous = redis.call('HGET', state, 'job_id')
  if previous and redis.call('EXISTS', job_key(previous)) == 1 then
    redis.call('HSET', state, 'skipped_at', ARGV[2])
    redis.call('HINCRBY', state, 'skipped', 1)
    return {'skipped', previous}
  end
end
local job = unpack_job(ARGV[4])
local outcome = enqueue(job, {KEYS[1], KEYS[2], KEYS[3]})
if outcome[1] == 'created' then redis.call('HSET', state, 'job_id', job.id, 'enqueued_at', ARGV[2]) end
return outcome
"""
)

#: ARGV: packed jobs, each packed (cmsgpack) with its three index keys: ``[[index keys, packed job],
#: ...]``. Enqueues them one after the other (their quotas reserved already); a reply per job, as
#: ``SUBMIT`` gives. A batch's jobs in one argument: a thousand cost what one costs to send.
SUBMIT_MANY = (
    _LIBRARY
    + _ENQUEUE
    + """
local replies = {}
for i, item in ipairs(cmsgpack.unpack(ARGV[1])) do
  replies[i] = enqueue(unpack_job(item[2]), item[1])
end
return replies
"""
)

#: ARGV: tenant, jobs, the default most open jobs, the default submits per second. Reserves a batch's
#: worth of a tenant's quotas before its jobs are enqueued: ``{}`` when allowed, else the refusal.
RESERVE = (
    _LIBRARY
    + _ENQUEUE
    + """
return over_quota(ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]) or {}
"""
)

#: ARGV: tenant, then parent ids. Whether jobs of the tenant may depend on them: ``{'ok', ''}`` or the
#: refusal the submit script would give. Lets a batch refuse every job before it writes any.
CHECK_PARENTS = (
    _LIBRARY
    + _ENQUEUE
    + """
local parents = {}
for i = 2, #ARGV do table.insert(parents, ARGV[i]) end
local _, refused = check_parents(ARGV[1], parents)
return refused or {'ok', ''}
"""
)

#: ARGV: lease ms, free slots, limits (JSON: type -> {r, p, c}), then queue/weight/credit triples.
#: Promotes due deferred jobs, recovers jobs whose lease lapsed, then takes up to ``free`` ready jobs
#: (sharing the slots by weight), honouring rate and concurrency limits. Returns
#: ``{claims, next_due, credits}``: claims are ``{id, arq score, queue, limit slot, job record ('' if
#: gone), attempt number, aborted (0/1)}``, the last three being what ARQ's ``run_job`` reads first;
#: next_due is the earliest of the queues' timers (a deferred job falls due or a lease lapses, ms) or
#: -1, each timer also written to ``keys.TIMERS``; credits are the queues' weighted round-robin credits
#: to pass to the next claim.
CLAIM = (
    _LIBRARY
    + """
local lease = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local limits = cjson.decode(ARGV[3])
local queues, weights, credits = {}, {}, {}
for i = 4, #ARGV, 3 do
  table.insert(queues, ARGV[i])
  table.insert(weights, tonumber(ARGV[i + 1]))
  table.insert(credits, tonumber(ARGV[i + 2]))
end
local now = now_ms()

-- A job whose lock is held stays tracked in its running set until the lock lapses.
local function track_lock(q, id)
  local left = math.max(redis.call('PTTL', in_progress_key(id)), 1)
  redis.call('ZADD', running_key(q), fmt(now + left), id)
end

for _, q in ipairs(queues) do
  local due = redis.call('ZRANGEBYSCORE', deferred_key(q), '-inf', fmt(now * 10 + 9), 'LIMIT', 0, 1000,
                         'WITHSCORES')
  for i = 1, #due, 2 do
    local id, score = due[i], tonumber(due[i + 1])
    redis.call('ZREM', deferred_key(q), id)
    if redis.call('ZSCORE', arq_queue_key(q), id) then
      local seq = redis.call('INCR', SEQUENCE)
      redis.call('ZADD', ready_key(q), fmt((score % 10) * BAND + seq), id)
    end
  end
  local lapsed = redis.call('ZRANGEBYSCORE', running_key(q), '-inf', fmt(now), 'LIMIT', 0, 100)
  for _, id in ipairs(lapsed) do
    -- EXISTS, not PTTL: a lock at its last millisecond reads PTTL 0 yet still exists
    if redis.call('EXISTS', in_progress_key(id)) == 1 then
      track_lock(q, id)
    else
      redis.call('ZREM', running_key(q), id)
      local m = redis.call('HMGET', meta_key(id), 'type', 'limit_key')
      local limit = m[1] and limits[m[1]]
      if limit and limit.c then
        local name = m[1]
        if m[2] and m[2] ~= '' then name = name .. ':' .. m[2] end
        release_slot(limit_key(name), id, now)
      end
      place_if_waiting(id, now)
    end
  end
end

-- Whether a job may start now under its type's limits: 'go' (and its slot), or it is parked/deferred.
local function admit(q, id, jtype, part, priority)
  local limit = jtype and limits[jtype]
  if not limit then return 'go', '' end
  local name = jtype
  if part and part ~= '' then name = name .. ':' .. part end
  local slot = ''
  if limit.c then
    slot = limit_key(name)
    redis.call('ZREMRANGEBYSCORE', slot .. ':running', '-inf', fmt(now))
    if redis.call('ZCARD', slot .. ':running') >= limit.c then
      redis.call('RPUSH', slot .. ':parked', id)
      return 'parked', ''
    end
  end
  if limit.r then
    local starts = limit_key(name) .. ':starts'
    redis.call('ZREMRANGEBYSCORE', starts, '-inf', fmt(now - limit.p))
    if redis.call('ZCARD', starts) >= limit.r then
      local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
      local due = tonumber(oldest[2]) + limit.p
      redis.call('ZADD', arq_queue_key(q), 'XX', fmt(due), id)
      redis.call('ZADD', deferred_key(q), fmt(due * 10 + (9 - priority)), id)
      return 'deferred', ''
    end
    redis.call('ZADD', starts, fmt(now), id .. '@' .. fmt(now))
    redis.call('PEXPIRE', starts, limit.p + 1000)
  end
  if slot ~= '' then redis.call('ZADD', slot .. ':running', fmt(now + lease), id) end
  return 'go', slot
end

local claims = {}
local function claim_from(q, quota)
  local taken, looked = 0, 0
  while taken < quota and looked < quota * 4 + 16 do
    local popped = redis.call('ZPOPMIN', ready_key(q))
    if #popped == 0 then break end
    looked = looked + 1
    local id = popped[1]
    local score = redis.call('ZSCORE', arq_queue_key(q), id)
    if score and redis.call('EXISTS', in_progress_key(id)) == 1 then
      -- someone holds its lock: leave it to the lease (tracked, so that a lapse brings it back)
      if not redis.call('ZSCORE', running_key(q), id) then track_lock(q, id) end
    elseif score then
      local m = redis.call('HMGET', meta_key(id), 'type', 'limit_key', 'priority')
      local verdict, slot = admit(q, id, m[1], m[2], tonumber(m[3]) or 5)
      if verdict == 'go' then
        redis.call('SET', in_progress_key(id), '1', 'PX', lease)
        redis.call('ZADD', running_key(q), fmt(now + lease), id)
        redis.call('HSET', meta_key(id), 'started_at', fmt(now))
        -- what ARQ's run_job reads in its first round trip, read here instead: the job, its attempt
        -- (counted now: a claim whose worker never hears back is a lost attempt), whether it was aborted
        local record = redis.call('GET', job_key(id))
        local tries = redis.call('INCR', retry_key(id))
        redis.call('EXPIRE', retry_key(id), ARQ_RETRY_TTL_S)
        local aborted = redis.call('ZREM', ABORTS, id)
        table.insert(claims, {id, score, q, slot, record or '', tries, aborted})
        taken = taken + 1
      end
    end
  end
  return taken
end

-- Share the free slots by smooth weighted round-robin among the queues that have work: for each slot,
-- every such queue earns its weight in credit and the richest pays the sum of their weights for it.
-- Credits carry over between claims, so over time each queue gets slots in proportion to its weight,
-- and the turns of a queue without work go to the others in proportion to theirs.
local has_work = {}
for i = 1, #queues do has_work[i] = true end
local left = free
while left > 0 do
  local best, sum = nil, 0
  for i = 1, #queues do
    if has_work[i] then
      credits[i] = credits[i] + weights[i]
      sum = sum + weights[i]
      if best == nil or credits[i] > credits[best] then best = i end
    end
  end
  if best == nil then break end
  credits[best] = credits[best] - sum
  if claim_from(queues[best], 1) == 1 then
    left = left - 1
  else
    has_work[best] = false  -- its turn was not used: give back what this round credited
    for i = 1, #queues do
      if has_work[i] or i == best then credits[i] = credits[i] - weights[i] end
    end
    credits[best] = credits[best] + sum
  end
end

-- Each queue's timer, exactly: its first deferred job's due time or its first lease's end.
local next_due = -1
for _, q in ipairs(queues) do
  if redis.call('ZCARD', ready_key(q)) > 0 then wake(q) end  -- more work than this worker took
  local timer = nil
  local first = redis.call('ZRANGE', deferred_key(q), 0, 0, 'WITHSCORES')
  if #first > 0 then timer = math.floor(tonumber(first[2]) / 10) end
  local lease_end = redis.call('ZRANGE', running_key(q), 0, 0, 'WITHSCORES')
  if #lease_end > 0 and (timer == nil or tonumber(lease_end[2]) < timer) then
    timer = tonumber(lease_end[2])
  end
  if timer == nil then
    redis.call('ZREM', TIMERS, q)
  else
    redis.call('ZADD', TIMERS, fmt(timer), q)
    if next_due < 0 or timer < next_due then next_due = timer end
  end
end
local credit_out = {}
for i = 1, #queues do credit_out[i] = fmt(credits[i]) end
return {claims, fmt(next_due), credit_out}
"""
)

#: ARGV: lease ms, then id/queue/slot triples. Extends the leases of a worker's running jobs.
RENEW = (
    _LIBRARY
    + """
local lease = tonumber(ARGV[1])
local now = now_ms()
for i = 2, #ARGV, 3 do
  local id, q, slot = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('PEXPIRE', in_progress_key(id), lease)
  redis.call('ZADD', running_key(q), 'XX', fmt(now + lease), id)
  if slot ~= '' then redis.call('ZADD', slot .. ':running', 'XX', fmt(now + lease), id) end
end
return 0
"""
)

#: ARGV: id, queue, limit slot, mode ('finish' or 'again'), result record ('' for none), result ttl ms
#: (0: forever), keep the in-progress lock ms ('' to delete it), delay ms (again), handed back (0/1),
#: outcome ('succeeded', 'failed', 'cancelled' or ''), bury (0/1), dead letter retention ms.
#: Ends an attempt: either the job ended (result written, out of every queue, dead letters if it failed
#: for good) or it waits again (a retry after its delay, or a hand-back at once).
RELEASE = (
    _LIBRARY
    + """
local id, q, slot, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = now_ms()
if redis.call('EXISTS', deleted_key(id)) == 1 then  -- deleted with its tenant's data while it ran
  redis.call('DEL', in_progress_key(id), retry_key(id), job_key(id))
  redis.call('ZREM', running_key(q), id)
  release_slot(slot, id, now)
  return 'gone'
end
if ARGV[7] ~= '' then
  redis.call('PEXPIRE', in_progress_key(id), ARGV[7])
else
  redis.call('DEL', in_progress_key(id))
end
redis.call('ZREM', running_key(q), id)
release_slot(slot, id, now)
if mode == 'again' then
  if ARGV[9] == '1' then redis.call('DECR', retry_key(id)) end
  local due = redis.call('ZSCORE', arq_queue_key(q), id)
  if not due then return 'gone' end
  due = tonumber(due) + tonumber(ARGV[8])
  redis.call('ZADD', arq_queue_key(q), fmt(due), id)
  place(q, id, due, priority_of(id), now)
  return 'again'
end
if ARGV[5] ~= '' then
  if tonumber(ARGV[6]) > 0 then
    redis.call('SET', result_key(id), ARGV[5], 'PX', ARGV[6])
    redis.call('PEXPIRE', meta_key(id), ARGV[6])  -- the job's meta lives as long as its result
  else
    redis.call('SET', result_key(id), ARGV[5])
    redis.call('PERSIST', meta_key(id))
  end
end
if ARGV[11] == '1' then
  redis.call('ZADD', dead_key(tenant_of(id)), fmt(now), id)
  for _, key in ipairs({result_key(id), meta_key(id), '"""
    + _prefix(keys.job_attempts)
    + """' .. id}) do
    redis.call('PEXPIRE', key, ARGV[12])
  end
end
redis.call('DEL', retry_key(id), job_key(id))
redis.call('ZREM', '"""
    + keys.ABORT_SET
    + """', id)
redis.call('ZREM', arq_queue_key(q), id)
redis.call('ZREM', ready_key(q), id)
redis.call('ZREM', deferred_key(q), id)
if record_outcome(q, id, ARGV[10], now) then return 'settle' end
return 'ended'
"""
)

#: KEYS: abort set. ARGV: id, cancelled result record, its ttl ms.
#: Cancels a job that has not started: it leaves every queue and its result says cancelled. Answers
#: 'finished', 'running', 'missing' or 'cancelled'.
CANCEL_WAITING = (
    _LIBRARY
    + """
local id = ARGV[1]
local q = queue_of(id)
if redis.call('EXISTS', result_key(id)) == 1 then return 'finished' end
if redis.call('EXISTS', in_progress_key(id)) == 1 then return 'running' end
if redis.call('ZREM', arq_queue_key(q), id) == 0 then return 'missing' end
local now = now_ms()
redis.call('ZREM', ready_key(q), id)
redis.call('ZREM', deferred_key(q), id)
-- a worker that popped the id a moment ago finds the abort request and records the cancellation itself
redis.call('ZADD', KEYS[1], fmt(now), id)
redis.call('PEXPIRE', job_key(id), 60000)
redis.call('SET', result_key(id), ARGV[2], 'PX', ARGV[3])
redis.call('HSET', meta_key(id), 'cancel_requested', fmt(now))
redis.call('PEXPIRE', meta_key(id), ARGV[3])
record_outcome(q, id, 'cancelled', now)
return 'cancelled'
"""
)

#: ARGV: id, tenant, how long the deleted marker of a running job lives (ms). Deletes one job of a
#: tenant's and every trace of it: out of every queue, its records gone, its dependents' links gone. A
#: running one is asked to abort and marked, so that its worker writes nothing back. Answers 1 when the
#: job was the tenant's and was deleted, else 0.
PURGE_JOB = (
    _LIBRARY
    + """
local id, tenant = ARGV[1], ARGV[2]
if redis.call('EXISTS', meta_key(id), job_key(id), result_key(id)) == 0 then return 0 end
if tenant_of(id) ~= tenant then return 0 end
local q = queue_of(id)
redis.call('ZREM', arq_queue_key(q), id)
redis.call('ZREM', ready_key(q), id)
redis.call('ZREM', deferred_key(q), id)
if redis.call('EXISTS', in_progress_key(id)) == 1 then
  redis.call('SET', deleted_key(id), '1', 'PX', ARGV[3])
  redis.call('ZADD', '"""
    + keys.ABORT_SET
    + """', fmt(now_ms()), id)
else
  redis.call('ZREM', running_key(q), id)
end
redis.call('DEL', job_key(id), result_key(id), meta_key(id), retry_key(id), dependents_key(id),
           '"""
    + _prefix(keys.job_attempts)
    + """' .. id)
redis.call('ZREM', SETTLING, id)
return 1
"""
)

#: KEYS: a job's meta. ARGV: field/value pairs. Sets them only while the job's meta exists, so a write
#: from a job deleted (with its tenant's data) while it ran never brings its record back.
UPDATE_META = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

#: ARGV: the id of a job that ended. When it succeeded, its dependents that wait for nothing else
#: are placed in line and ``{}`` is returned; otherwise the dependents still to cancel are returned.
SETTLE = (
    _LIBRARY
    + """
local parent = ARGV[1]
local outcome = redis.call('HGET', meta_key(parent), 'outcome')
local children = redis.call('SMEMBERS', dependents_key(parent))
if outcome == 'succeeded' then
  local now = now_ms()
  for _, child in ipairs(children) do
    if redis.call('HINCRBY', meta_key(child), 'waiting_for', -1) <= 0 then
      redis.call('HDEL', meta_key(child), 'waiting_for')
      place_if_waiting(child, now)
    end
  end
  children = {}
end
if #children == 0 then
  redis.call('DEL', dependents_key(parent))
  redis.call('ZREM', SETTLING, parent)
end
return children
"""
)
