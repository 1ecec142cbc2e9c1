-- KEYS[1] the entry's hash, KEYS[2] the index, KEYS[3] the events queue.
-- ARGV[1] id, ARGV[2] the task message, ARGV[3] how long a replayed entry is kept (s),
-- ARGV[4] now (epoch s).
-- Queued and taken off the list in one step: a replay is never lost nor doubled.
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then return 0 end
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'replays', 1)
redis.call('HSET', KEYS[1], 'replayed_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
