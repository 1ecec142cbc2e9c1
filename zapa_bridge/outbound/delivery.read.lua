-- KEYS[1] the record, KEYS[2] sessions, KEYS[3] phone -> session, KEYS[4] lane heads,
-- KEYS[5] the record's message body.
-- ARGV[1] session ('' none), ARGV[2] the sender's number ('' none), ARGV[3] '1' to take
-- both from the record's own message.
-- What an attempt needs to know, in one call: the record, the head of its conversation's
-- lane, and the state of its session, named by the message (ARGV[1], or the record's own
-- message when ARGV[3] is '1') or found by its number. The lane and the session are fields
-- of the hashes in KEYS, so no key is built here. The message is the body's, else (a record
-- written before the body had a key of its own) the record's `message` field; it is
-- returned apart, '' when there is no body.
local record = redis.call('HGETALL', KEYS[1])
local body = redis.call('GET', KEYS[5]) or ''
local lane = redis.call('HGET', KEYS[1], 'lane')
local turn = lane and lane ~= '' and redis.call('HGET', KEYS[4], lane) or ''
local session, phone = ARGV[1], ARGV[2]
if ARGV[3] == '1' then
  local message = body ~= '' and body or redis.call('HGET', KEYS[1], 'message') or ''
  local ok, fields = pcall(cjson.decode, message)
  if ok and type(fields) == 'table' then
    session = type(fields.session) == 'string' and fields.session or ''
    phone = type(fields.from_number) == 'string' and fields.from_number or ''
  end
end
if session == '' and phone ~= '' then session = redis.call('HGET', KEYS[3], phone) or '' end
local state = session ~= '' and redis.call('HGET', KEYS[2], session) or ''
return {record, turn, session, state, body}
