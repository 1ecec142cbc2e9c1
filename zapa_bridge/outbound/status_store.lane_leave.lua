-- No KEYS nor ARGV: lane_leave(id, lane, now, take, k), a function of the transition
-- script, which passes it its keys (k).
-- Hands a finished head's lane to its next message, or ends the lane. The next message is
-- marked due now; with `take`, a queued one is marked pending instead (as the due-message
-- mover's take would) and its message returned too, for the caller to publish at once.
local function lane_leave(id, lane, now, take, k)
  local members = k.lane_prefix .. key_part(lane)
  redis.call('ZREM', members, id)
  if redis.call('HGET', k.heads, lane) ~= id then return '' end
  local nxt = redis.call('ZRANGE', members, 0, 0)[1]
  if not nxt then redis.call('HDEL', k.heads, lane); return '' end
  redis.call('ZREM', members, nxt)
  redis.call('HSET', k.heads, lane, nxt)
  if take then
    local record = redis.call('HMGET', k.msg_prefix .. key_part(nxt), 'status', 'message')
    if (record[1] == 'queued' or record[1] == 'sending') and record[2] then
      redis.call('ZREM', k.due, nxt)
      redis.call('ZADD', k.pending, now, nxt)
      return nxt, record[2]
    end
  end
  redis.call('ZADD', k.due, now, nxt)
  return nxt
end
