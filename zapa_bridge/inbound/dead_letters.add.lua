-- KEYS[1] the entry's hash, KEYS[2] the index, KEYS[3] the metrics counters hash.
-- ARGV[1] id, ARGV[2] failed at (epoch s), ARGV[3] fields (JSON list of name, value),
-- ARGV[4] the counter's field.
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[3])))
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
return 1
