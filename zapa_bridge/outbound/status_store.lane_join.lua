-- No KEYS nor ARGV: lane_join(key, id, lane, heads, seq, members), a function of the
-- create and transition scripts, which pass it their keys.
-- Conversation lanes (per-conversation order). The field `<lane>` of the `lane-heads` hash
-- names the one message of the conversation that may be in a queue or with a worker, and a
-- sorted set per lane holds the ids of the messages waiting behind it, scored by a sequence
-- number taken when they joined. A message joins as head when the lane is empty, else at
-- the back of the waiting set (so a conversation of one message costs one hash field and no
-- key of its own); when the head finishes (sent or dead) the first waiting one becomes head
-- and is marked due at once. Only the head is ever dispatched, so no message overtakes an
-- earlier one, whatever happens to the head (retries, holds, crashes).
local function lane_join(key, id, lane, heads, seq, members)
  redis.call('HSET', key, 'lane', lane)
  if redis.call('HSETNX', heads, lane, id) == 1 then return true end
  local n = redis.call('INCR', seq)
  redis.call('HSET', key, 'seq', n)
  redis.call('ZADD', members, n, id)
  return false
end
