-- No KEYS nor ARGV: rate_take(log, limit, window, slot, keep_ms), a function of the scripts
-- that take a send slot (rate_limit.acquire.lua, delivery.claim.lua), which pass it the rate
-- log of the session they were given in KEYS.
-- A sliding log on Redis's clock: the slot `slot` is taken when fewer than `limit` sends lie
-- in the last `window` seconds ('0'), else the answer is the seconds until the oldest one
-- leaves the window. The log is kept `keep_ms` after its last slot.
local function rate_take(log, limit, window, slot, keep_ms)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  if redis.call('ZCARD', log) < limit then
    redis.call('ZADD', log, now, slot)
    redis.call('PEXPIRE', log, keep_ms)
    return '0'
  end
  local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  return tostring(math.max(0.001, tonumber(oldest[2]) + window - now))
end
