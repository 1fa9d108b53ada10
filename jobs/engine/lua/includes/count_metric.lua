-- Count into the cluster's job counters (``jobs.engine.metrics`` names the fields; never a job id).
local function count_metric(field, n)
  redis.call('HINCRBY', '${METRICS}', field, n)
end
