-- No KEYS nor ARGV: a function for the scripts that build a key themselves.
-- key_part(s): one part of a key, '%' written '%25' and ':' written '%3A', as keys.part.
local function key_part(s)
  local escaped = string.gsub(s, '%%', '%%25')
  escaped = string.gsub(escaped, ':', '%%3A')
  return escaped
end
