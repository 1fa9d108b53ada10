-- Claim work for one worker: in the queues whose timer has come (${TIMERS}), promote the due deferred
-- jobs and recover the jobs whose lease lapsed; then take up to ``free`` ready jobs, sharing the slots
-- between the queues by weight and honouring the job types' rate and concurrency limits. A job held
-- back by a limit is parked (until a slot frees) or deferred (until the rate allows), never claimed. A
-- queue an operator paused (${PAUSED_QUEUES}) gives no job and wakes no worker; its jobs wait in line.
--
-- KEYS: none
-- ARGV: [1] lease ms, [2] free slots, [3] limits (JSON: job type -> {r = starts, p = per ms,
--       c = at most running}), [4] the request's id (``<worker>:<n>``; '' for none), then per queue
--       [i] name, [i+1] weight, [i+2] round-robin credit
-- Replies {claims, next_due, credits}:
--   claims    a list, one {id, ARQ queue score, queue, limit slot ('' for none), job record ('' if
--             gone), attempt number, aborted (0/1), job type, queue wait ms (due -> now), lease token}
--             per job taken (possibly none); record, attempt and aborted are what ARQ's ``run_job``
--             reads first, read here instead; type and wait go into the worker's metrics tally
--             (jobs.engine.metrics); the token, held in the job's lock, fences the attempt: renewals
--             and releases that bring another token change nothing (renew_leases, release_claim)
--   next_due  the earliest of the queues' timers (a deferred job falls due or a lease lapses, ms), or
--             -1 when none; a timer this claim moved is also written to the timers set
--   credits   the queues' weighted round-robin credits, in ARGV's order, for the next claim
-- Safe to send twice (redis-py resends a command whose connection dropped): a worker's last request that
-- took jobs is remembered for a while in the worker's own key (a worker sends one claim at a time, and a
-- resend is of its last), and the same request again answers with those jobs, taking no more.

--- @include "fmt"
--- @include "now_ms"
--- @include "meta_key"
--- @include "job_key"
--- @include "retry_key"
--- @include "in_progress_key"
--- @include "arq_queue_key"
--- @include "ready_key"
--- @include "deferred_key"
--- @include "running_key"
--- @include "wake"
--- @include "place_if_waiting"
--- @include "fair_tag"
--- @include "release_slot"
--- @include "emit_event"
--- @include "emit_status"

local function limit_key(name) return '${LIMIT_PREFIX}' .. name end

local now = now_ms()
local request = ARGV[4]
-- the request's worker's memory of its last claim that took jobs (the request id is "<worker>:<n>")
local memory = nil
if request ~= '' then
  memory = '${CLAIMED_PREFIX}' .. (string.match(request, '^(.*):') or request)
  local earlier = redis.call('GET', memory)
  local reply = earlier and cmsgpack.unpack(earlier)
  if reply and reply[4] == request then  -- this very request, sent again: its reply, with the records read now
    for _, claim in ipairs(reply[1]) do claim[5] = redis.call('GET', job_key(claim[1])) or '' end
    return {reply[1], reply[2], reply[3]}
  end
end
local lease = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local limits = cjson.decode(ARGV[3])
local queues, weights, credits = {}, {}, {}
for i = 5, #ARGV, 3 do
  table.insert(queues, ARGV[i])
  table.insert(weights, tonumber(ARGV[i + 1]))
  table.insert(credits, tonumber(ARGV[i + 2]))
end
-- Each queue's timer as the claim finds it (keys.TIMERS: never later than its first deferred job's due
-- time or its first lease's end; none when it has neither). Only a queue whose timer has come has due
-- jobs to promote or lapsed leases to recover; every queue whose deferred or running jobs this claim
-- changes is marked ``rescan`` or has its new leases' ends in ``new_leases``, for the timers at the end.
local timers, rescan, new_leases = {}, {}, {}

-- A job whose lock is held stays tracked in its running set until the lock lapses.
local function track_lock(q, id)
  local left = math.max(redis.call('PTTL', in_progress_key(id)), 1)
  redis.call('ZADD', running_key(q), fmt(now + left), id)
  rescan[q] = true
end

if #queues > 0 then
  local found = redis.call('ZMSCORE', '${TIMERS}', unpack(queues))
  for i, q in ipairs(queues) do timers[q] = found[i] and tonumber(found[i]) or nil end
end

for _, q in ipairs(queues) do
  if timers[q] and timers[q] <= now then
    rescan[q] = true
    local due = redis.call('ZRANGEBYSCORE', deferred_key(q), '-inf', fmt(now * 10 + 9), 'LIMIT', 0, 1000,
                           'WITHSCORES')
    for i = 1, #due, 2 do
      local id, score = due[i], tonumber(due[i + 1])
      redis.call('ZREM', deferred_key(q), id)
      if redis.call('ZSCORE', arq_queue_key(q), id) then
        local band = score % 10  -- 9 - priority
        local tag = fair_tag(q, redis.call('HGET', meta_key(id), 'tenant') or '${DEFAULT_TENANT}', 9 - band)
        redis.call('ZADD', ready_key(q), fmt(band * ${PRIORITY_BAND} + tag), id)
        emit_status(id, 'queued', nil)
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
        if place_if_waiting(id, now) then emit_status(id, 'queued', {reason = 'lease_lapsed'}) end
      end
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
      redis.call('SADD', '${PARKED_LIMITS}', name)  -- for readmit_parked.lua, should the limit change
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
      rescan[q] = true
      emit_status(id, 'deferred', {reason = 'rate_limit'})
      return 'deferred', ''
    end
    redis.call('ZADD', starts, fmt(now), id .. '@' .. fmt(now))
    redis.call('PEXPIRE', starts, limit.p + 1000)
  end
  if slot ~= '' then redis.call('ZADD', slot .. ':running', fmt(now + lease), id) end
  return 'go', slot
end

local claims = {}
-- the jobs this claim leased, by queue: written to each queue's running set once, at the end
local leased = {}
-- the fair-share virtual time of each queue and priority, as the jobs taken from it move it on, and how
-- many ready jobs each tenant has fewer there (fair_tag.lua)
local clocks, gone = {}, {}
local emptied = {}  -- the queues whose ready jobs this claim took to the last
-- Take up to ``quota`` ready jobs from queue ``q``, starting with ``popped`` ({id, score}, taken out of
-- its ready set already), then the next in line; a job looked at but not taken (locked, held back by
-- a limit, or gone) does not count.
local function claim_from(q, quota, popped)
  local taken, looked = 0, 0
  while taken < quota and looked < quota * 4 + 16 do
    if looked > 0 then popped = redis.call('ZPOPMIN', ready_key(q)) end
    if #popped == 0 then
      emptied[q] = true
      break
    end
    looked = looked + 1
    local id = popped[1]
    local band = math.floor(tonumber(popped[2]) / ${PRIORITY_BAND})
    clocks[q .. ' ' .. (9 - band)] = tonumber(popped[2]) - band * ${PRIORITY_BAND}
    local m = redis.call('HMGET', meta_key(id), 'type', 'limit_key', 'priority', 'tenant', 'tries',
                         'started_at')
    local ready = q .. ' ' .. (m[4] or '${DEFAULT_TENANT}') .. '|' .. (9 - band)
    gone[ready] = (gone[ready] or 0) + 1
    local score = redis.call('ZSCORE', arq_queue_key(q), id)
    if score then
      -- its attempt (counted now, in the job's meta: a claim whose worker never hears back is a lost
      -- attempt). A job an earlier version started (``started_at``, no ``tries``) has its count in
      -- ARQ's own counter (``arq:retry:<id>``), read once, then left to expire or go with the job's end;
      -- a job never started has none to read.
      local tries = tonumber(m[5])
      if not tries then tries = m[6] and tonumber(redis.call('GET', retry_key(id)) or '0') or 0 end
      tries = tries + 1
      -- the request's id is unique and the job's attempt grows with each claim of it, so no two claims
      -- of a job share a token; a request without an id takes the next of a counter
      local token = ARGV[4] .. '#' .. tries
      if ARGV[4] == '' then token = fmt(redis.call('INCR', '${LEASE_SEQUENCE}')) end
      -- the lock, taken only if nobody holds it; a job its limits hold back gives it up again
      local verdict, slot = 'held', ''
      if redis.call('SET', in_progress_key(id), token, 'PX', lease, 'NX') then
        verdict, slot = admit(q, id, m[1], m[2], tonumber(m[3]) or 5)
        if verdict ~= 'go' then redis.call('DEL', in_progress_key(id)) end
      elseif not redis.call('ZSCORE', running_key(q), id) then
        track_lock(q, id)  -- someone holds its lock: left to the lease, tracked so a lapse brings it back
      end
      if verdict == 'go' then
        -- what ARQ's run_job reads in its first round trip, read here instead: the job, its attempt,
        -- whether it was aborted
        local record = redis.call('GET', job_key(id))
        leased[q] = leased[q] or {}
        table.insert(leased[q], id)
        new_leases[q] = now + lease
        redis.call('HSET', meta_key(id), 'started_at', fmt(now), 'tries', tries)
        local jtype = m[1] or ''
        emit_event(m[4] or '${DEFAULT_TENANT}', id, jtype, q, 'status', 'in_progress', {attempt = tries})
        local waited = math.max(now - tonumber(score), 0)
        -- aborted (0/1): filled in once the claim has taken all its jobs (below)
        table.insert(claims, {id, score, q, slot, record or '', tries, 0, jtype, fmt(waited), token})
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
local paused = {}
if #queues > 0 then
  local marks = redis.call('HMGET', '${PAUSED_QUEUES}', unpack(queues))
  for i = 1, #queues do paused[i] = marks[i] ~= false end
end
local has_work = {}
for i = 1, #queues do has_work[i] = not paused[i] end
local left = free
while left > 0 do
  -- every queue that may have work earns its weight; the richest with a ready job pays their sum for
  -- the slot. One ZMPOP tries them richest first (ties: in ARGV's order) and takes the first job found,
  -- as trying each in turn would: a queue found empty gives back what it earned and is done.
  local order, sum = {}, 0
  for i = 1, #queues do
    if has_work[i] then
      credits[i] = credits[i] + weights[i]
      sum = sum + weights[i]
      table.insert(order, i)
    end
  end
  if #order == 0 then break end
  table.sort(order, function(a, b) return credits[a] > credits[b] or (credits[a] == credits[b] and a < b) end)
  local ready = {#order}  -- ZMPOP's arguments: numkeys, the keys, MIN
  for n, i in ipairs(order) do ready[n + 1] = ready_key(queues[i]) end
  table.insert(ready, 'MIN')
  local found = redis.call('ZMPOP', unpack(ready))
  local best = nil
  for n, i in ipairs(order) do
    if found and ready[n + 1] == found[1] then
      best = i
      break
    end
    has_work[i], emptied[queues[i]] = false, true
    credits[i] = credits[i] - weights[i]
    sum = sum - weights[i]
  end
  if best == nil then break end
  credits[best] = credits[best] - sum
  if claim_from(queues[best], 1, found[2][1]) == 1 then
    left = left - 1
  else
    has_work[best] = false  -- its turn was not used: give back what this round credited
    for i = 1, #queues do
      if has_work[i] or i == best then credits[i] = credits[i] - weights[i] end
    end
    credits[best] = credits[best] + sum
  end
end

-- The claimed jobs' leases in their queues' running sets, and their abort marks taken (ARQ's run_job
-- takes its job out of arq:abort and reads whether it was there): a few commands for the whole claim,
-- not two a job. Chunks of 1000 stay within what unpack takes.
for q, ids in pairs(leased) do
  local members = {}
  for _, id in ipairs(ids) do
    table.insert(members, fmt(now + lease))
    table.insert(members, id)
  end
  for first = 1, #members, 1000 do
    redis.call('ZADD', running_key(q), unpack(members, first, math.min(first + 999, #members)))
  end
end
for first = 1, #claims, 1000 do
  local last = math.min(first + 999, #claims)
  local ids = {}
  for i = first, last do table.insert(ids, claims[i][1]) end
  local marks = redis.call('ZMSCORE', '${ABORT_SET}', unpack(ids))
  local marked = {}
  for i = first, last do
    if marks[i - first + 1] then
      claims[i][7] = 1
      table.insert(marked, claims[i][1])
    end
  end
  if #marked > 0 then redis.call('ZREM', '${ABORT_SET}', unpack(marked)) end
end

-- Each queue's fair-share clocks, and its tenants' counts of ready jobs less those taken (never below
-- zero: jobs placed before they were counted leave too; fair_tag.lua, fair_left.lua), in one HSET a queue.
local fair = {}
local function fair_of(q)
  fair[q] = fair[q] or {fields = {}, names = {}, taken = {}}
  return fair[q]
end
for at, tag in pairs(clocks) do
  local q, priority = string.match(at, '^(%S+) (%d)$')
  local f = fair_of(q)
  table.insert(f.fields, '|' .. priority)
  table.insert(f.fields, fmt(tag))
end
for at, count in pairs(gone) do
  local q, ready = string.match(at, '^(%S+) (%S+)$')
  local f = fair_of(q)
  table.insert(f.names, 'n|' .. ready)
  table.insert(f.taken, count)
end
for q, f in pairs(fair) do
  for first = 1, #f.names, 1000 do  -- chunks of 1000 stay within what unpack takes
    local last = math.min(first + 999, #f.names)
    local counts = redis.call('HMGET', '${FAIR_PREFIX}' .. q, unpack(f.names, first, last))
    for i = first, last do
      table.insert(f.fields, f.names[i])
      table.insert(f.fields, fmt(math.max((tonumber(counts[i - first + 1]) or 0) - f.taken[i], 0)))
    end
  end
  for first = 1, #f.fields, 1000 do
    redis.call('HSET', '${FAIR_PREFIX}' .. q, unpack(f.fields, first, math.min(first + 999, #f.fields)))
  end
end

-- A worker for the ready jobs left behind (not by a paused queue), and each queue's timer: exact again where
-- this claim rescanned the queue or moved jobs between its sets, earlier where only new leases began.
local next_due = -1
for i, q in ipairs(queues) do
  if not paused[i] and not emptied[q] and redis.call('ZCARD', ready_key(q)) > 0 then wake(q) end
  local timer = timers[q]
  if rescan[q] then
    timer = nil
    local first = redis.call('ZRANGE', deferred_key(q), 0, 0, 'WITHSCORES')
    if #first > 0 then timer = math.floor(tonumber(first[2]) / 10) end
    local lease_end = redis.call('ZRANGE', running_key(q), 0, 0, 'WITHSCORES')
    if #lease_end > 0 and (timer == nil or tonumber(lease_end[2]) < timer) then
      timer = tonumber(lease_end[2])
    end
    if timer == nil then
      redis.call('ZREM', '${TIMERS}', q)
    else
      redis.call('ZADD', '${TIMERS}', fmt(timer), q)
    end
  elseif new_leases[q] and (timer == nil or new_leases[q] < timer) then
    timer = new_leases[q]
    redis.call('ZADD', '${TIMERS}', fmt(timer), q)
  end
  if timer ~= nil and (next_due < 0 or timer < next_due) then next_due = timer end
end
local credit_out = {}
for i = 1, #queues do credit_out[i] = fmt(credits[i]) end
local reply = {claims, fmt(next_due), credit_out}
if memory and #claims > 0 then  -- remembered without the job records: no params kept aside
  local kept = {}
  for i, claim in ipairs(claims) do
    kept[i] = {claim[1], claim[2], claim[3], claim[4], '', claim[6], claim[7], claim[8], claim[9], claim[10]}
  end
  redis.call('SET', memory, cmsgpack.pack({kept, reply[2], reply[3], request}), 'PX', ${RESEND_MEMORY_MS} * 2)
end
return reply
