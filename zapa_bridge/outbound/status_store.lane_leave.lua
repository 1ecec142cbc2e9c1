-- No KEYS nor ARGV: lane_leave(id, lane, now, take, k), a function of the transition
-- script, which passes it its keys (k: `members` the lane's waiting set, `heads`, `due`,
-- `pending`) and the record and message body key prefixes (k.msg_prefix, k.body_prefix).
-- Hands a finished head's lane to its next message, or ends the lane. The next message is
-- marked due now; with `take`, a queued one is marked pending instead (as the due-message
-- mover's take would) and its message returned too, for the caller to send or publish at
-- once.
-- The next message's record and its message body are the keys built here (k.msg_prefix ..
-- key_part(nxt), k.body_prefix .. key_part(nxt)): its id is read from the waiting set in
-- this same step. A record written before the body had a key of its own keeps its message
-- in its `message` field.
local function lane_leave(id, lane, now, take, k)
  if redis.call('HGET', k.heads, lane) ~= id then
    redis.call('ZREM', k.members, id)
    return ''
  end
  -- The head is never in the waiting set: lane_join and the hand-on below keep it out.
  local nxt = redis.call('ZRANGE', k.members, 0, 0)[1]
  if not nxt then redis.call('HDEL', k.heads, lane); return '' end
  redis.call('ZREM', k.members, nxt)
  redis.call('HSET', k.heads, lane, nxt)
  if take then
    local record = redis.call('HMGET', k.msg_prefix .. key_part(nxt), 'status', 'message')
    local message = redis.call('GET', k.body_prefix .. key_part(nxt)) or record[2]
    if (record[1] == S.QUEUED or record[1] == S.SENDING) and message then
      redis.call('ZREM', k.due, nxt)
      redis.call('ZADD', k.pending, now, nxt)
      return nxt, message
    end
  end
  redis.call('ZADD', k.due, now, nxt)
  return nxt
end
