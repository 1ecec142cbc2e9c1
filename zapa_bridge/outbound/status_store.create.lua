-- KEYS[1] the record, KEYS[2] the queue (KEYS[1] when nothing is pushed), KEYS[3] the
-- idempotency key (KEYS[1] when none), KEYS[4] the lane's waiting set (KEYS[1] when not
-- ordered), KEYS[5] lane heads, KEYS[6] the lane sequence, KEYS[7] recent ids, KEYS[8]
-- pending, KEYS[9] the record's message body.
-- ARGV[1] the fields (JSON list of name, value), ARGV[2] the idempotency key's TTL (s),
-- ARGV[3] the record key prefix, ARGV[4] created (epoch s), ARGV[5] id, ARGV[6] how many
-- recent ids are kept, ARGV[7] lane ('' not ordered), ARGV[8] '1' with an idempotency key,
-- ARGV[9] the task message to push ('' none), ARGV[10] the message (JSON).
-- The record of the idempotency key's owner is the one key built here: its id is read by
-- this script (ARGV[3] .. key_part(owner)).
-- Statuses are named through `S` (status_store.LUA_STATUSES, prepended).
local record, once, members = KEYS[1], KEYS[3], KEYS[4]
local heads, seq, recent, pending = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local id, lane = ARGV[5], ARGV[7]
if redis.call('EXISTS', record) == 1 then
  -- This very call again (redis-py repeats a call whose answer it lost): say what it did.
  if redis.call('HGET', record, 'created') ~= ARGV[4] then return {0} end
  if lane ~= '' and redis.call('HGET', heads, lane) ~= id then return {2} end
  return {1}
end
if ARGV[8] == '1' then
  -- An idempotency key: the first message owns it. A key whose message has no record was
  -- left by a call that failed to queue, and is taken over.
  local owner = redis.call('GET', once)
  if owner and redis.call('EXISTS', ARGV[3] .. key_part(owner)) == 1 then return {3, owner} end
  redis.call('SET', once, id, 'EX', tonumber(ARGV[2]))
end
redis.call('HSET', record, unpack(cjson.decode(ARGV[1])))
-- The message lives beside the record, not in it: the record's values stay short enough
-- for Redis to keep it as a compact listpack.
redis.call('SET', KEYS[9], ARGV[10])
redis.call('LPUSH', recent, id)
redis.call('LTRIM', recent, 0, tonumber(ARGV[6]) - 1)
if lane ~= '' and not lane_join(record, id, lane, heads, seq, members) then
  -- A short note: the history, like every value of a waiting record, stays within 64 bytes.
  redis.call('HSET', record, 'history', cjson.encode({{tonumber(ARGV[4]), S.QUEUED,
    'queued behind earlier messages'}}))
  return {2}
end
redis.call('ZADD', pending, tonumber(ARGV[4]), id)
if ARGV[9] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[9]) end
return {1}
