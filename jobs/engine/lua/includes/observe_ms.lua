--- @include "count_metric"

-- Observe a duration (ms) in one of the counters' histograms: the count of its bucket (the first upper
-- bound it does not exceed; past the last, +Inf) and the sum. ``kind``: 'r' run time, 'w' queue wait.
local BUCKET_BOUNDS_MS = '${METRIC_BUCKETS_MS}'
local function observe_ms(kind, labels, ms)
  if ms < 0 then ms = 0 end
  local index = 0
  for bound in string.gmatch(BUCKET_BOUNDS_MS, '[^:]+') do
    if ms <= tonumber(bound) then break end
    index = index + 1
  end
  count_metric(kind .. 'b|' .. labels .. '|' .. index, 1)
  count_metric(kind .. 's|' .. labels, math.floor(ms))
end
