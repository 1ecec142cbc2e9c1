-- KEYS[1] the record, KEYS[2] recent ids, KEYS[3] the queue (KEYS[1] when none).
-- ARGV[1] the message (JSON), ARGV[2] received (epoch s), ARGV[3] its type, ARGV[4]
-- retention (s), ARGV[5] its id, ARGV[6] how many recent ids are kept, ARGV[7] the task
-- it goes to ('' none), ARGV[8] the task message.
-- Record the message once (HSETNX) and, if nobody handed it on yet, hand it on: push the
-- prepared task message and note where it went. Returns 1 when this call handed it on.
-- The hand-on mark is a field of the record itself, so no other message's key (an id
-- ending in ':routed', say) can ever stand for it.
local key = KEYS[1]
local ttl = tonumber(ARGV[4])
if redis.call('HSETNX', key, 'message', ARGV[1]) == 1 then
  redis.call('HSET', key, 'received', ARGV[2], 'routed_to', '', 'type', ARGV[3])
  redis.call('EXPIRE', key, ttl)
  redis.call('LPUSH', KEYS[2], ARGV[5])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
end
if redis.call('HSETNX', key, 'routed', 1) == 0 then return 0 end
if ARGV[7] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[8])
  redis.call('HSET', key, 'routed_to', ARGV[7])
end
return 1
