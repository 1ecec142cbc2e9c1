-- KEYS[1] due, KEYS[2] pending. ARGV[1] message id, ARGV[2] when it is due (epoch s).
-- Move a message from pending to due at ARGV[2].
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[1])
