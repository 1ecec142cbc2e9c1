-- No KEYS nor ARGV: change(K, A), the transition script's body as a function, so that a
-- script that reads first (delivery.claim.lua) can make its change of status in the same
-- call. K and A are laid out as that script's KEYS and ARGV (status_store.transition.lua);
-- a caller that makes only changes that cannot touch a key may leave that key out (nil).
-- `read` is the record's fields as this function reads them (see `stored` below), for a
-- caller that has just read them itself; nil to read them here.
-- Statuses are named through `S`, `FINAL` and `DEAD` (status_store.LUA_STATUSES, prepended),
-- and lane_join, lane_leave, key_part and the receipt steps (status_store.receipt.lua) are
-- defined before it.
local function change(K, A, read)
  local key, new = K[1], A[1]
  local now, ttl = tonumber(A[3]), tonumber(A[4])
  local session, lane = A[14], A[15]
  local k = {pending = K[2], due = K[3], dead = K[4], held_sessions = K[5],
             heads = K[6], seq = K[7], held_set = K[8], members = K[9],
             bridge = K[10], body = K[12], kept = K[13], msg_prefix = A[10],
             body_prefix = A[17]}
  for i = 18, #A, 3 do
    if A[i] ~= 'HINCRBY' and A[i] ~= 'HINCRBYFLOAT' then
      return redis.error_reply('not a counter: ' .. A[i])
    end
  end
  local fields = cjson.decode(A[6])
  -- The record's fields this change reads, in one call: each redis.call costs as much as
  -- a small command, and this script runs at least twice per send.
  local stored = read or redis.call('HMGET', key, 'status', 'session', 'lane', 'id',
                                    'updated', 'history', 'attempts', 'failures',
                                    'lease_until')
  local cur = stored[1]
  if cur then
    local own_session, own_lane = fields['session'] or stored[2] or '', stored[3] or ''
    if own_session ~= session or own_lane ~= lane then
      return redis.error_reply('STALEKEYS keys of session "' .. session .. '", lane "' .. lane
        .. '" for ' .. key .. ', whose session is "' .. own_session .. '", lane "' .. own_lane
        .. '"')
    end
  end
  -- What the caller did, whether or not the change applies: the counters (metrics), and
  -- the rate-limit slot of a bridge call, which now counts from when the bridge answered.
  for i = 18, #A, 3 do
    redis.call(A[i], K[14 + (i - 18) / 3], A[i + 1], A[i + 2])
  end
  if A[16] ~= '' then
    local t = redis.call('TIME')
    redis.call('ZADD', K[11], 'XX', tonumber(t[1]) + tonumber(t[2]) / 1e6, A[16])
  end
  if not cur then return {0, ''} end
  local allowed = false
  for s in string.gmatch(A[2], '[^,]+') do if s == cur then allowed = true end end
  if not allowed then return {0, cur} end
  if A[12] ~= '' and stored[5] ~= A[12] then return {0, cur} end
  if cur == S.SENDING and new == S.SENDING then
    local lease = tonumber(stored[9] or '0') or 0
    if lease > now then return {-1, tostring(lease)} end
  end
  local history = cjson.decode(stored[6] or '[]')
  table.insert(history, {now, new, A[5]})
  while #history > tonumber(A[11]) do table.remove(history, 1) end
  if fields['parts'] then
    -- A long text's progress, read before the send: receipts may have moved a part since.
    local stored_parts = redis.call('HGET', key, 'parts')
    if stored_parts then fields['parts'] = merged_parts(stored_parts, fields['parts']) end
  end
  if fields['message'] then
    -- The message has a key of its own; one written before that leaves the record here.
    redis.call('SET', k.body, fields['message'])
    redis.call('HDEL', key, 'message')
    fields['message'] = nil
  end
  -- One write of every field that changes; a field named twice takes its last value.
  local flat = {'status', new, 'updated', A[3]}
  for f, v in pairs(fields) do table.insert(flat, f); table.insert(flat, v) end
  if A[7] == '1' then
    table.insert(flat, 'attempts'); table.insert(flat, (tonumber(stored[7]) or 0) + 1)
  end
  if A[8] == '+1' then
    table.insert(flat, 'failures'); table.insert(flat, (tonumber(stored[8]) or 0) + 1)
  elseif A[8] == '0' then
    table.insert(flat, 'failures'); table.insert(flat, 0)
  end
  if A[9] ~= '' then table.insert(flat, 'lease_until'); table.insert(flat, A[9]) end
  table.insert(flat, 'history'); table.insert(flat, cjson.encode(history))
  redis.call('HSET', key, unpack(flat))
  if A[9] == '' and stored[9] then redis.call('HDEL', key, 'lease_until') end
  local id = stored[4]
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
    dispatch, taken = lane_leave(id, lane, now, A[13] == '1', k)
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
  elseif FINAL[cur] then  -- only a finished record has a TTL to lose
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
    -- Receipts zapw posted before it answered the send wait for this change (receipts.py);
    -- a part of a long text has them too, whatever the status it leaves its record in.
    if new == S.SENT or fields['parts'] then
      apply_kept_receipts(key, k.body, k.kept, A[3], ttl, tonumber(A[11]), k.dead, bridge_id)
    end
  end
  return {1, cur, dispatch, waiting and 1 or 0, taken or ''}
end
