-- luacheck for the assembled Redis scripts (python -m jobs.engine.lua --dump DIR; see .ci/run).
-- Redis runs Lua 5.1 with these globals and no others; a script may not define globals of its own.
std = "lua51"
read_globals = {"redis", "cjson", "cmsgpack", "bit", "struct", "KEYS", "ARGV"}
max_line_length = 120
