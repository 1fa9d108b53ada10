-- Set fields of a job's meta only while the meta exists, so that a write from a job deleted (with its
-- tenant's data) while it ran never brings its record back.
--
-- KEYS: [1] the job's meta
-- ARGV: field/value pairs
-- Replies:
--   1                                the fields were set
--   0                                the job's meta is gone: nothing written
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
