-- No KEYS nor ARGV: join_burst(list, state, due, member, message, id, now, window, cap,
-- joinable), a function of the webhook intake's burst script.
-- Put one inbound message of a sender into the sender's bursts, or answer 0: hand it on
-- alone at once. `list` holds the sender's messages not yet handed on, each as
-- {"b": its burst's id, "alone": true|false, "message": ...}, oldest first; `state` the
-- latest burst's id (`open`, its first message's id), `first` and `close` (epoch s); `due`
-- the senders by when their oldest burst is due (`member` is this sender).
-- A joinable message joins the latest burst while it is open (now < close) and moves its
-- close to min(now + window, first + cap); else it opens a burst of its own. A message that
-- is not joinable (a group's, an unsupported type) is handed on alone at once when nothing
-- of the sender waits, else it closes the latest burst and waits behind it, alone, so the
-- sender's messages reach the task in order. Reads come first: a key of the wrong type
-- refuses the call before it writes anything. Returns 1 when the message waits here.
local function burst_of(list, index)
  local entry = redis.call('LINDEX', list, index)
  if not entry then return nil end
  return cjson.decode(entry).b
end

local function join_burst(list, state, due, member, message, id, now, window, cap, joinable)
  local size = redis.call('LLEN', list)
  local latest = redis.call('HMGET', state, 'open', 'first', 'close')
  local score = redis.call('ZSCORE', due, member)
  local open, first, close = latest[1], tonumber(latest[2]), tonumber(latest[3])
  local burst, alone = id, not joinable
  if alone then
    if size == 0 then return 0 end
    redis.call('HSET', state, 'open', id, 'first', now, 'close', now)
    if not score or tonumber(score) > now then redis.call('ZADD', due, now, member) end
  elseif open and close and now < close then
    burst = open
    close = math.min(now + window, first + cap)
    redis.call('HSET', state, 'close', close)
    if burst_of(list, 0) == open then redis.call('ZADD', due, close, member) end
  else
    close = now + math.min(window, cap)
    redis.call('HSET', state, 'open', id, 'first', now, 'close', close)
    if size == 0 then redis.call('ZADD', due, close, member) end
  end
  redis.call('RPUSH', list, '{"b":' .. cjson.encode(burst) .. ',"alone":' .. tostring(alone)
             .. ',"message":' .. message .. '}')
  return 1
end
