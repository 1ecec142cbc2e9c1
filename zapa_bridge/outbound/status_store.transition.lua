-- KEYS[1] the record, KEYS[2] pending, KEYS[3] due, KEYS[4] dead letters, KEYS[5] held
-- sessions, KEYS[6] lane heads, KEYS[7] the lane sequence, KEYS[8...] the counters' hashes.
-- ARGV[1] new status, ARGV[2] allowed previous statuses (comma-separated), ARGV[3] now,
-- ARGV[4] retention (s), ARGV[5] history note, ARGV[6] fields (JSON object), ARGV[7] '1'
-- counts an attempt, ARGV[8] failures ('+1', '0' or ''), ARGV[9] lease until ('' none),
-- ARGV[10] record key prefix, ARGV[11] history limit, ARGV[12] unchanged since ('' any),
-- ARGV[13] '1' takes the next message of the lane, ARGV[14] held set prefix, ARGV[15]
-- lane set prefix, ARGV[16] zapw id prefix, ARGV[17...] per counter hash KEYS[8 + i]: the
-- command, field and amount.
-- Keys built here, from prefixes and key_part: the record's session and lane are read from
-- the record in this same step (the held set, the lane's waiting set, zapw's id), and so
-- is the next message of the lane (its record).
local key, new = KEYS[1], ARGV[1]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local k = {pending = KEYS[2], due = KEYS[3], dead = KEYS[4], held_sessions = KEYS[5],
           heads = KEYS[6], seq = KEYS[7], msg_prefix = ARGV[10], held_prefix = ARGV[14],
           lane_prefix = ARGV[15], bridge_prefix = ARGV[16]}
-- Counters of what the caller did (metrics), whether or not the change applies.
for i = 17, #ARGV, 3 do
  if ARGV[i] ~= 'HINCRBY' and ARGV[i] ~= 'HINCRBYFLOAT' then
    return redis.error_reply('not a counter: ' .. ARGV[i])
  end
end
for i = 17, #ARGV, 3 do
  redis.call(ARGV[i], KEYS[8 + (i - 17) / 3], ARGV[i + 1], ARGV[i + 2])
end
local cur = redis.call('HGET', key, 'status')
if not cur then return {0, ''} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == cur then allowed = true end end
if not allowed then return {0, cur} end
if ARGV[12] ~= '' and redis.call('HGET', key, 'updated') ~= ARGV[12] then return {0, cur} end
if cur == 'sending' and new == 'sending' then
  local lease = tonumber(redis.call('HGET', key, 'lease_until') or '0')
  if lease > now then return {-1, tostring(lease)} end
end
local final = {sent=true, delivered=true, read=true, failed=true, expired=true}
local fields = cjson.decode(ARGV[6])
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
local session = redis.call('HGET', key, 'session') or ''
local held = k.held_prefix .. key_part(session)
if cur == 'held' and new ~= 'held' then
  redis.call('ZREM', held, id)
  if redis.call('ZCARD', held) == 0 then redis.call('SREM', k.held_sessions, session) end
end
if new == 'held' then
  redis.call('ZADD', held, 'NX', now, id)
  redis.call('SADD', k.held_sessions, session)
end
local dead = (new == 'failed' or new == 'expired')
if (cur == 'failed' or cur == 'expired') and not dead then
  redis.call('ZREM', k.dead, id)
end
local lane = redis.call('HGET', key, 'lane') or ''
local dispatch, waiting, taken = '', false, false
if lane ~= '' and final[new] and not final[cur] then
  dispatch, taken = lane_leave(id, lane, now, ARGV[13] == '1', k)
elseif lane ~= '' and final[cur] and not final[new] then
  -- A dead letter replayed: back of its lane.
  local members = k.lane_prefix .. key_part(lane)
  if lane_join(key, id, lane, k.heads, k.seq, members) then dispatch = id else waiting = true end
end
if dead then redis.call('ZADD', k.dead, now, id) end
-- Only a record that is done expires: queued messages carry their id alone (the message
-- is here), and dead letters wait for an operator.
if final[new] and not dead then
  redis.call('EXPIRE', key, ttl)
else
  redis.call('PERSIST', key)
end
if (new == 'queued' or new == 'sending') and not waiting then
  redis.call('ZADD', k.pending, now, id)
else
  redis.call('ZREM', k.pending, id)
end
local bridge_id = fields['bridge_message_id']
if bridge_id and bridge_id ~= '' then
  redis.call('SET', k.bridge_prefix .. key_part(session) .. ':' .. key_part(bridge_id), id,
             'EX', ttl)
end
return {1, cur, dispatch, waiting and 1 or 0, taken or ''}
