-- KEYS[1] the record, KEYS[2] sessions, KEYS[3] phone -> session, KEYS[4] lane heads,
-- KEYS[5] pending, KEYS[6] the rate log of session ARGV[9] (KEYS[1] when ARGV[9] is ''),
-- KEYS[7] the record's message body.
-- ARGV[1] session ('' none), ARGV[2] the sender's number ('' none), ARGV[3] '1' to take
-- both from the record's own message, ARGV[4] now, ARGV[5] the claim's lease until,
-- ARGV[6] history limit, ARGV[7] '1' may claim, ARGV[8] '1' when some session has a rate
-- limit, ARGV[9] the session KEYS[6] belongs to ('' none), ARGV[10] its sends allowed per
-- window ('' no limit), ARGV[11] its window (s), ARGV[12] how long its log is kept (ms),
-- ARGV[13] the worker process that claims (the record's `owner`, for crash recovery).
-- What an attempt needs to know, in one call: the record, the head of its conversation's
-- lane, and the state of its session, named by the message (ARGV[1], or the record's own
-- message when ARGV[3] is '1') or found by its number. On the common path (the record
-- queued, its turn, its session not known offline, not past its expires_at, a rate slot
-- free) the same call takes the slot and claims the message: `sending`, one attempt more,
-- under a lease, as the transition script's change() would make it. Anything else claims
-- nothing, and the caller decides from what was read. The lane and the session are fields
-- of the hashes in KEYS, and the rate log is the one the caller expected: a message of
-- another session is not claimed here. No key is built.
-- The message is the body's, else (a record written before the body had a key of its own)
-- the record's `message` field.
-- Answers {record (HGETALL), turn, session, state, 1 claimed | 0, wait, body ('' none)}:
-- `wait` ('0' none) is the seconds until a slot frees when only the slot was missing.
local record = redis.call('HGETALL', KEYS[1])
if #record == 0 then return {record, '', '', '', 0, '0', ''} end
local body = redis.call('GET', KEYS[7]) or ''
local r = {}
for i = 1, #record, 2 do r[record[i]] = record[i + 1] end
local lane = r.lane or ''
local turn = lane ~= '' and redis.call('HGET', KEYS[4], lane) or ''
local ok, message = pcall(cjson.decode, body ~= '' and body or r.message or '')
if not ok or type(message) ~= 'table' then message = nil end
local session, phone = ARGV[1], ARGV[2]
if ARGV[3] == '1' and message then
  session = type(message.session) == 'string' and message.session or ''
  phone = type(message.from_number) == 'string' and message.from_number or ''
end
if session == '' and phone ~= '' then session = redis.call('HGET', KEYS[3], phone) or '' end
local state = session ~= '' and redis.call('HGET', KEYS[2], session) or ''
local now = tonumber(ARGV[4])

-- The common path, checked as the caller would check it; anything else is the caller's.
local function common()
  if ARGV[7] ~= '1' or r.status ~= S.QUEUED or session == '' or not message then
    return false
  end
  if lane ~= '' and turn ~= r.id then return false end
  if message.ttl ~= nil then return false end  -- published by name: its expiry is relative
  local expires_at = message.expires_at
  if expires_at ~= nil and (type(expires_at) ~= 'number' or now > expires_at) then
    return false
  end
  if state ~= '' then
    local known, registry = pcall(cjson.decode, state)
    if not known or type(registry) ~= 'table' or registry.status ~= 'connected' then
      return false
    end
  end
  return not (ARGV[8] == '1' and session ~= ARGV[9])
end

if not common() then return {record, turn, session, state, 0, '0', body} end
local attempt = tonumber(r.attempts or '0') + 1
if ARGV[10] ~= '' then
  local wait = rate_take(KEYS[6], tonumber(ARGV[10]), tonumber(ARGV[11]),
                         r.id .. ':' .. attempt, tonumber(ARGV[12]))
  if wait ~= '0' then return {record, turn, session, state, 0, wait, body} end
end
-- Queued to sending touches the record and pending only: no held set, no lane change.
local claimed = change({KEYS[1], KEYS[5], nil, nil, nil, KEYS[4]}, {
  S.SENDING, S.QUEUED, ARGV[4], '0', 'attempt ' .. attempt,
  cjson.encode({session = session, owner = ARGV[13]}), '1', '', ARGV[5], '', ARGV[6], '', '0',
  session, lane, ''},
  {r.status, r.session or false, r.lane or false, r.id, r.updated or false, r.history or false,
   r.attempts or false, r.failures or false, r.lease_until or false})
if type(claimed) ~= 'table' or claimed[1] ~= 1 then
  return redis.error_reply('the claim of ' .. KEYS[1] .. ' was refused')
end
return {record, turn, session, state, 1, '0', body}
