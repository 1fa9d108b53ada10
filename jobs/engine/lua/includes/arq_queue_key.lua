local function arq_queue_key(q)
  if q == '${DEFAULT_QUEUE}' then return '${ARQ_DEFAULT_QUEUE}' end
  return '${ARQ_QUEUE_PREFIX}' .. q
end
