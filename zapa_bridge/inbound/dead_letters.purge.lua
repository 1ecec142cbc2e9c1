-- KEYS[1] the index, KEYS[1 + i] the entry's hash of ARGV[i].
-- ARGV[i] an id listed in the index.
for i, id in ipairs(ARGV) do
  redis.call('DEL', KEYS[i + 1])
  redis.call('ZREM', KEYS[1], id)
end
return #ARGV
