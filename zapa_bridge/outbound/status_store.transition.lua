-- KEYS[1] the record, KEYS[2] pending, KEYS[3] due, KEYS[4] dead letters, KEYS[5] held
-- sessions, KEYS[6] lane heads, KEYS[7] the lane sequence, KEYS[8] the held set of session
-- ARGV[14], KEYS[9] the waiting set of lane ARGV[15] (KEYS[1] when not ordered), KEYS[10]
-- zapw's id of session ARGV[14] and the fields' bridge_message_id (KEYS[1] when none),
-- KEYS[11] the record's message body, KEYS[12] the receipts kept for zapw's id (KEYS[1]
-- when none), KEYS[13...] the counters' hashes.
-- ARGV[1] new status, ARGV[2] allowed previous statuses (comma-separated), ARGV[3] now,
-- ARGV[4] retention (s), ARGV[5] history note, ARGV[6] fields (JSON object), ARGV[7] '1'
-- counts an attempt, ARGV[8] failures ('+1', '0' or ''), ARGV[9] lease until ('' none),
-- ARGV[10] record key prefix, ARGV[11] history limit, ARGV[12] unchanged since ('' any),
-- ARGV[13] '1' takes the next message of the lane, ARGV[14] the session KEYS[8] and
-- KEYS[10] were built from (the fields' session, else the record's), ARGV[15] the lane
-- KEYS[9] was built from ('' not ordered), ARGV[16] message body key prefix, ARGV[17...] per
-- counter hash KEYS[12 + i]: the command, field and amount.
-- A record whose session (as the fields leave it) or lane is not ARGV[14] or ARGV[15] is
-- refused, before any write, with an error that starts 'STALEKEYS'. The keys built here are
-- the record and message body of the lane's next message (lane_leave), whose id this step
-- reads. A `message` among the fields is written to the body (KEYS[11]), not the record.
-- Statuses are named through `S`, `FINAL` and `DEAD` (status_store.LUA_STATUSES, prepended).
local key, new = KEYS[1], ARGV[1]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local session, lane = ARGV[14], ARGV[15]
local k = {pending = KEYS[2], due = KEYS[3], dead = KEYS[4], held_sessions = KEYS[5],
           heads = KEYS[6], seq = KEYS[7], held_set = KEYS[8], members = KEYS[9],
           bridge = KEYS[10], body = KEYS[11], kept = KEYS[12], msg_prefix = ARGV[10],
           body_prefix = ARGV[16]}
for i = 17, #ARGV, 3 do
  if ARGV[i] ~= 'HINCRBY' and ARGV[i] ~= 'HINCRBYFLOAT' then
    return redis.error_reply('not a counter: ' .. ARGV[i])
  end
end
local fields = cjson.decode(ARGV[6])
local stored = redis.call('HMGET', key, 'status', 'session', 'lane')
local cur = stored[1]
if cur then
  local own_session, own_lane = fields['session'] or stored[2] or '', stored[3] or ''
  if own_session ~= session or own_lane ~= lane then
    return redis.error_reply('STALEKEYS keys of session "' .. session .. '", lane "' .. lane
      .. '" for ' .. key .. ', whose session is "' .. own_session .. '", lane "' .. own_lane
      .. '"')
  end
end
-- Counters of what the caller did (metrics), whether or not the change applies.
for i = 17, #ARGV, 3 do
  redis.call(ARGV[i], KEYS[13 + (i - 17) / 3], ARGV[i + 1], ARGV[i + 2])
end
if not cur then return {0, ''} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == cur then allowed = true end end
if not allowed then return {0, cur} end
if ARGV[12] ~= '' and redis.call('HGET', key, 'updated') ~= ARGV[12] then return {0, cur} end
if cur == S.SENDING and new == S.SENDING then
  local lease = tonumber(redis.call('HGET', key, 'lease_until') or '0')
  if lease > now then return {-1, tostring(lease)} end
end
if fields['message'] then
  -- The message has a key of its own; one written before that leaves the record here.
  redis.call('SET', k.body, fields['message'])
  redis.call('HDEL', key, 'message')
  fields['message'] = nil
end
local flat = {'status', new, 'updated', ARGV[3]}
for f, v in pairs(fields) do table.insert(flat, f); table.insert(flat, v) end
redis.call('HSET', key, unpack(flat))
if ARGV[7] == '1' then redis.call('HINCRBY', key, 'attempts', 1) end
if ARGV[8] == '+1' then redis.call('HINCRBY', key, 'failures', 1)
elseif ARGV[8] == '0' then redis.call('HSET', key, 'failures', 0) end
if ARGV[9] == '' then redis.call('HDEL', key, 'lease_until')
else redis.call('HSET', key, 'lease_until', ARGV[9]) end
local history = cjson.decode(redis.call('HGET', key, 'history') or '[]')
table.insert(history, {now, new, ARGV[5]})
while #history > tonumber(ARGV[11]) do table.remove(history, 1) end
redis.call('HSET', key, 'history', cjson.encode(history))
local id = redis.call('HGET', key, 'id')
if cur == S.HELD and new ~= S.HELD then
  redis.call('ZREM', k.held_set, id)
  if redis.call('ZCARD', k.held_set) == 0 then redis.call('SREM', k.held_sessions, session) end
end
if new == S.HELD then
  redis.call('ZADD', k.held_set, 'NX', now, id)
  redis.call('SADD', k.held_sessions, session)
end
local dies = DEAD[new] or false
if DEAD[cur] and not dies then
  redis.call('ZREM', k.dead, id)
end
local dispatch, waiting, taken = '', false, false
if lane ~= '' and FINAL[new] and not FINAL[cur] then
  dispatch, taken = lane_leave(id, lane, now, ARGV[13] == '1', k)
elseif lane ~= '' and FINAL[cur] and not FINAL[new] then
  -- A dead letter replayed: back of its lane.
  if lane_join(key, id, lane, k.heads, k.seq, k.members) then dispatch = id else waiting = true end
end
if dies then redis.call('ZADD', k.dead, now, id) end
-- Only a record that is done expires: queued messages carry their id alone (the message
-- is in its body), and dead letters wait for an operator. The body goes with its record.
if FINAL[new] and not dies then
  redis.call('EXPIRE', key, ttl)
  redis.call('EXPIRE', k.body, ttl)
else
  redis.call('PERSIST', key)
  redis.call('PERSIST', k.body)
end
if (new == S.QUEUED or new == S.SENDING) and not waiting then
  redis.call('ZADD', k.pending, now, id)
else
  redis.call('ZREM', k.pending, id)
end
local bridge_id = fields['bridge_message_id']
if bridge_id and bridge_id ~= '' then
  redis.call('SET', k.bridge, id, 'EX', ttl)
  -- Receipts zapw posted before it answered the send wait for this change (receipts.py).
  if new == S.SENT then
    apply_kept_receipts(key, k.body, k.kept, ARGV[3], ttl, tonumber(ARGV[11]), k.dead)
  end
end
return {1, cur, dispatch, waiting and 1 or 0, taken or ''}
