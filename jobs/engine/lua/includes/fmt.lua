-- A number as Redis wants it in a score or a reply: an integer, never in exponent notation.
local function fmt(n) return string.format('%.0f', n) end
