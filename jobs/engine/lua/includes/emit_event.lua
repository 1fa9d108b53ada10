-- Tell the job's tenant what happened to it, in the same script as the change: one entry in the
-- tenant's event stream (trimmed to about ${EVENTS_RETAINED} entries), its field ``d`` the event as JSON:
-- {id, type, queue, status, event = 'status' or 'progress'} and ``extra``'s fields. When it happened is
-- the entry's id (milliseconds first), which readers add as ``at``: no TIME call per event.
local function emit_event(tenant, id, jtype, q, kind, status, extra)
  local event = {id = id, type = jtype, queue = q, status = status, event = kind}
  if extra then
    for field, value in pairs(extra) do event[field] = value end
  end
  redis.call('XADD', '${EVENTS_PREFIX}' .. tenant, 'MAXLEN', '~', ${EVENTS_RETAINED}, '*',
             'd', cjson.encode(event))
end
