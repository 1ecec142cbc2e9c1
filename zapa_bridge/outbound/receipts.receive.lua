-- No KEYS nor ARGV: receive_receipt(bridge, kept, status, note, reason, now, retention,
-- history_limit, dead, prefix, kept_ttl, want_trace, body_prefix, bridge_id), a function of
-- the intake's receipt script and of the receipt handler's; `bridge` is the key of zapw's
-- id `bridge_id`.
-- The record zapw's id names (`bridge` holds our id) takes the receipt; a receipt that
-- beats the worker's own `sent` record (zapw posts `message.sent` before it answers the
-- send) is kept at `kept` for `kept_ttl` seconds, and the `sent` change applies it. The keys
-- built here are the record and the message body of the id `bridge` holds (prefix ..
-- key_part(id), body_prefix .. key_part(id)).
-- Returns {outcome ('applied', 'unchanged', 'kept', 'unknown'), our id, the status the
-- record has now, its traceparent when `want_trace` is '1'}.
local function receive_receipt(bridge, kept, status, note, reason, now, retention,
                               history_limit, dead, prefix, kept_ttl, want_trace, body_prefix,
                               bridge_id)
  local id = redis.call('GET', bridge)
  if not id then
    if not RECEIPT_FROM[status] then return {'unknown', '', '', ''} end
    local kept_note = note
    if reason ~= '' then kept_note = note .. '\n' .. reason end
    redis.call('HSET', kept, status, kept_note)
    redis.call('EXPIRE', kept, kept_ttl)
    return {'kept', '', '', ''}
  end
  local key = prefix .. key_part(id)
  local changed, previous, current = receipt_step(key, body_prefix .. key_part(id), status,
                                                  note, reason, now, retention,
                                                  history_limit, dead, bridge_id)
  if previous == '' then return {'unknown', id, '', ''} end
  local trace = ''
  if want_trace == '1' then trace = redis.call('HGET', key, 'traceparent') or '' end
  if changed then return {'applied', id, current, trace} end
  return {'unchanged', id, previous, trace}
end
