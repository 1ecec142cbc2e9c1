-- KEYS[1] the session's rate log.
-- ARGV[1] sends allowed per window, ARGV[2] the window (s), ARGV[3] the slot's name,
-- ARGV[4] how long the log is kept (ms).
-- The body is rate_take() (rate_limit.take.lua, prepended).
return rate_take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]))
