-- KEYS[1] the session's rate log. ARGV[1] the slot's name.
-- The slot now counts from when the bridge answered (if it is still in the log).
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) + tonumber(t[2]) / 1e6, ARGV[1])
