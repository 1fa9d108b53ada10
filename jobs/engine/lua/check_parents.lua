-- Whether jobs of a tenant may depend on these parents: lets a batch refuse every job before it writes
-- any. Writes nothing.
--
-- KEYS: none
-- ARGV: [1] tenant, [2...] parent ids
-- Replies {outcome, detail}:
--   {'ok', ''}                       every parent is the tenant's and has not failed or been cancelled
--   {'unknown_parent', parent id}    a parent is not the tenant's waiting, running or ended job
--   {'parent_<outcome>', parent id}  a parent failed or was cancelled

--- @include "parents_pending"

local parents = {}
for i = 2, #ARGV do table.insert(parents, ARGV[i]) end
local _, refused = parents_pending(ARGV[1], parents)
return refused or {'ok', ''}
