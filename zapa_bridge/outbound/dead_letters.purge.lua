-- KEYS[1] the dead-letter index, KEYS[2i] the record of ARGV[i], KEYS[2i + 1] its message
-- body.
-- ARGV[i] a message id listed in the index.
-- A record still dead (or gone) goes with its body and its entry; one replayed meanwhile
-- stays.
local removed = 0
for i, id in ipairs(ARGV) do
  local key = KEYS[2 * i]
  local status = redis.call('HGET', key, 'status')
  if not status or DEAD[status] then
    redis.call('DEL', key, KEYS[2 * i + 1])
    redis.call('ZREM', KEYS[1], id)
    removed = removed + 1
  end
end
return removed
