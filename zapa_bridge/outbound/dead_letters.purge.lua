-- KEYS[1] the dead-letter index, KEYS[1 + i] the record of ARGV[i].
-- ARGV[i] a message id listed in the index.
-- A record still dead (or gone) goes with its entry; one replayed meanwhile stays.
local removed = 0
for i, id in ipairs(ARGV) do
  local key = KEYS[i + 1]
  local status = redis.call('HGET', key, 'status')
  if not status or DEAD[status] then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], id)
    removed = removed + 1
  end
end
return removed
