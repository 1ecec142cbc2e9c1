-- No KEYS nor ARGV: record_inbound(key, recent, queue, message, received, type, retention,
-- id, recent_limit, task, payload), a function of the inbound log's script and of the
-- webhook intake's.
-- Record the message once (HSETNX) and, if nobody handed it on yet, hand it on: push the
-- prepared task message `payload` on `queue` and note the task it went to (`task`, '' for
-- none; an empty `payload` pushes nothing: a message waiting in a burst, which its
-- burst's hand-on pushes). Returns 1 when this call handed it on (or found it had nowhere
-- to go), 0 when it had been before. The hand-on mark is a field of the record itself, so no other message's
-- key (an id ending in ':routed', say) can ever stand for it.
local function record_inbound(key, recent, queue, message, received, type, retention, id,
                              recent_limit, task, payload)
  if redis.call('HSETNX', key, 'message', message) == 1 then
    redis.call('HSET', key, 'received', received, 'routed_to', '', 'type', type)
    redis.call('EXPIRE', key, retention)
    redis.call('LPUSH', recent, id)
    redis.call('LTRIM', recent, 0, recent_limit - 1)
  end
  if redis.call('HEXISTS', key, 'routed') == 1 then return 0 end
  -- Push before marking: a refused push (an ACL, out of memory) leaves the message to be
  -- handed on by the next try (Redis does not roll a script back).
  if task ~= '' and payload ~= '' then redis.call('LPUSH', queue, payload) end
  redis.call('HSET', key, 'routed', 1, 'routed_to', task)
  return 1
end
