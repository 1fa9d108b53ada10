-- One bounded step of looking for the jobs ARQ's own producers put in one of jobsvc's ARQ queues: the
-- entries due within a window (where new arrivals are), or the next batch of a full pass (ZSCAN). An
-- entry of a job jobsvc wrote before it counted its own is counted on the way. One worker looks at a
-- queue at a time: each step takes or renews the queue's lock, and a last step gives it up.
--
-- KEYS: none
-- ARGV: [1] queue, [2] the looking worker's id, [3] how long the lock lasts (ms), [4] entries to read,
--       [5] 'window' or 'scan', then
--         window: [6] lowest due ms ('' for now - [8]), [7] highest due ms ('' for now + [8]), [8] reach
--                 ms, [9] the window's entries read already
--         scan:   [6] ZSCAN cursor ('0' to start a pass)
-- Replies:
--   {'busy'}                          another worker is looking at this queue: nothing read
--   {'ok', difference, next, lowest, highest, counted, found}
--                                     difference: ZCARD minus jobsvc's count, after this step; next: the
--                                     offset or cursor to go on from ('' when this step was the last);
--                                     lowest, highest: the window's bounds ('' for a pass); counted: old
--                                     entries of jobsvc's counted now; found: {{id, due ms, record (''
--                                     once expired), its ttl ms}, ...}

--- @include "fmt"
--- @include "now_ms"
--- @include "job_key"
--- @include "arq_queue_key"
--- @include "count_arq_entry"

local q, worker, step = ARGV[1], ARGV[2], tonumber(ARGV[4])
local key = arq_queue_key(q)
local lock = '${INTAKE_LOCK_PREFIX}' .. q
local holder = redis.call('GET', lock)
if holder and holder ~= worker then return {'busy'} end
redis.call('SET', lock, worker, 'PX', ARGV[3])

local entries
local following, lowest, highest = '', '', ''
if ARGV[5] == 'window' then
  local now = now_ms()
  local reach = tonumber(ARGV[8])
  lowest = ARGV[6] ~= '' and ARGV[6] or fmt(now - reach)
  highest = ARGV[7] ~= '' and ARGV[7] or fmt(now + reach)
  local offset = tonumber(ARGV[9])
  entries = redis.call('ZRANGEBYSCORE', key, lowest, highest, 'WITHSCORES', 'LIMIT', offset, step)
  if #entries == 2 * step then following = tostring(offset + step) end
else
  local scanned = redis.call('ZSCAN', key, ARGV[6], 'COUNT', step)
  entries = scanned[2]
  if scanned[1] ~= '0' then following = scanned[1] end
end

local counted, found = 0, {}
for i = 1, #entries, 2 do
  local id = entries[i]
  local m = redis.call('HMGET', meta_key(id), '${ARQ_ENTRY_FIELD}', 'type', 'outcome')
  if not m[1] then  -- not counted as jobsvc's
    if m[2] and not m[3] then  -- yet jobsvc's: written before jobsvc counted its own
      count_arq_entry(q, id)
      counted = counted + 1
    else
      local job = job_key(id)
      table.insert(found, {id, entries[i + 1], redis.call('GET', job) or '', redis.call('PTTL', job)})
    end
  end
end
if following == '' then redis.call('DEL', lock) end
local difference = redis.call('ZCARD', key) - tonumber(redis.call('HGET', '${ARQ_OWNED}', q) or '0')
return {'ok', difference, following, lowest, highest, counted, found}
