-- KEYS[1] the record, KEYS[2] the pacing log of (session, recipient) (KEYS[1] when there is
-- no recipient limit), KEYS[3] the session's count of messages let through today, KEYS[4]
-- the hash session -> first seen connected, KEYS[5] the session's count of messages held
-- for its daily limit today, KEYS[6] the set of sessions at their daily limit today.
-- ARGV[1] now (the pacing clock, epoch s), ARGV[2] the session, ARGV[3] today (UTC days
-- since the epoch), ARGV[4] the daily limit ('' none), ARGV[5] the warm-up, limits of a
-- number's first days, comma-separated ('' none), ARGV[6] sends allowed per recipient
-- window ('' no recipient limit), ARGV[7] that window (s), ARGV[8] the slot's name (the
-- message id), ARGV[9] how long the recipient log is kept (ms), ARGV[10] how long today's
-- keys are kept (s).
-- The body uses rate_take() (rate_limit.take.lua, prepended).
-- Checks the session's daily limit, then the recipient's rate; when both allow, counts the
-- message once for both and marks the record `paced`, so a retry, a crash's re-run or the
-- next part of a split message never counts again. The day of a number's warm-up is counted
-- from the first time the registry saw its session connected (or, never seen, this first
-- message, which starts it). Answers:
--   {'gone'}                        no record
--   {'paced'}                       counted before: nothing to do
--   {'daily', seq, sent, limit}     over today's limit: `seq`, the message's place among the
--                                   session's messages held today (kept across re-checks)
--   {'wait', seconds}               the recipient's window is full for that long
--   {'go', sent, limit}             counted: `sent` today, of `limit` ('' none); the
--                                   session is no longer at its limit (it was raised)
local r = redis.call('HMGET', KEYS[1], 'id', 'paced', 'day_hold')
if not r[1] then return {'gone'} end
if r[2] == '1' then return {'paced'} end
local now, today, session = tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[2]
local kept = tonumber(ARGV[10])

local limit = nil
if ARGV[4] ~= '' or ARGV[5] ~= '' then
  local first = tonumber(redis.call('HGET', KEYS[4], session) or '')
  if not first then
    redis.call('HSETNX', KEYS[4], session, ARGV[1])
    first = now
  end
  local index = math.max(0, today - math.floor(first / 86400))
  local day = 0
  for entry in string.gmatch(ARGV[5], '[^,]+') do
    if day == index then limit = tonumber(entry) end
    day = day + 1
  end
  if not limit and ARGV[4] ~= '' then limit = tonumber(ARGV[4]) end
end
local sent = tonumber(redis.call('GET', KEYS[3]) or '0')
if limit and sent >= limit then
  local seq = nil
  local held = r[3] or ''
  local on, place = string.match(held, '^(%d+):(%d+)$')
  if on and tonumber(on) == today then seq = place end
  if not seq then
    seq = tostring(redis.call('INCR', KEYS[5]))
    redis.call('EXPIRE', KEYS[5], kept)
    redis.call('HSET', KEYS[1], 'day_hold', ARGV[3] .. ':' .. seq)
  end
  redis.call('SADD', KEYS[6], session)
  redis.call('EXPIRE', KEYS[6], kept)
  return {'daily', seq, tostring(sent), tostring(limit)}
end

if ARGV[6] ~= '' then
  local wait = rate_take(KEYS[2], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8],
                         tonumber(ARGV[9]))
  if wait ~= '0' then return {'wait', wait} end
end
sent = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], kept)
if limit then redis.call('SREM', KEYS[6], session) end  -- a raised limit: not at it now
redis.call('HSET', KEYS[1], 'paced', '1')
if r[3] then redis.call('HDEL', KEYS[1], 'day_hold') end
return {'go', tostring(sent), limit and tostring(limit) or ''}
