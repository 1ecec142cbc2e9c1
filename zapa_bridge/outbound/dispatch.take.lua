-- KEYS[1] due, KEYS[2] pending.
-- ARGV[1] now (epoch s), ARGV[2] how many at most, ARGV[3] the one message to take ('' any).
-- Take up to ARGV[2] messages due by ARGV[1] (or just ARGV[3] when given), and mark them
-- pending as of ARGV[1]: from now on they are in a queue or about to be.
local due, pending, now = KEYS[1], KEYS[2], tonumber(ARGV[1])
local ids
if ARGV[3] ~= '' then
  if redis.call('ZREM', due, ARGV[3]) == 0 then return {} end
  ids = {ARGV[3]}
else
  ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
  if #ids == 0 then return ids end
  redis.call('ZREM', due, unpack(ids))
end
for _, id in ipairs(ids) do redis.call('ZADD', pending, now, id) end
return ids
