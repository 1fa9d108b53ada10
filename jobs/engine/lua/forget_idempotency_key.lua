-- Forget an Idempotency-Key record of a deleted job, unless it changed since it was read (a new submit
-- took the key meanwhile).
--
-- KEYS: [1] the Idempotency-Key record
-- ARGV: [1] the value it had when read
-- Replies:
--   1                                deleted
--   0                                it changed or is gone: nothing written
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
