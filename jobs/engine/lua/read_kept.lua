-- What a tenant keeps in Redis now, against its storage budget: its expired buckets taken off first
-- (kept_key.lua).
--
-- KEYS: none
-- ARGV: [1] tenant
-- Replies {jobs, bytes}

--- @include "kept_now"

local jobs, bytes = kept_now(ARGV[1])
return {jobs, bytes}
