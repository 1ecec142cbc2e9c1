-- KEYS[1] the record, KEYS[2] the liveness key of worker process ARGV[1].
-- ARGV[1] the owner (the process that claimed it), ARGV[2] the `sending` status,
-- ARGV[3] now (epoch s), ARGV[4] history limit.
-- Let go of a message a dead worker was sending: if the record is still `sending` under
-- ARGV[1] and that process's liveness key is gone, drop the claim's lease, so the next
-- claim is granted at once (as after an interrupted attempt: a possible duplicate).
-- Answers 1 released, 0 not (the owner is alive, or the record moved on).
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local status, owner, history = unpack(redis.call('HMGET', KEYS[1], 'status', 'owner',
                                                 'history'))
if status ~= ARGV[2] or owner ~= ARGV[1] then return 0 end
local entries = cjson.decode(history or '[]')
table.insert(entries, {tonumber(ARGV[3]), ARGV[2], 'its worker died; queued again'})
while #entries > tonumber(ARGV[4]) do table.remove(entries, 1) end
redis.call('HDEL', KEYS[1], 'lease_until')
redis.call('HSET', KEYS[1], 'history', cjson.encode(entries))
return 1
