-- No KEYS nor ARGV: functions of the scripts that apply zapw's receipts (the webhook
-- intake's, the receipt handler's) and of the `sent` change, which applies the receipts
-- kept for it. `RECEIPT_FROM` (status -> the statuses it may follow) and `RECEIPT_ORDER`
-- (the order kept receipts are applied in) are prepended from status_store.py.
-- A receipt moves a record only forward: sent -> delivered -> read, or sent -> failed.
-- receipt_step(key, body, new, note, reason, now, retention, history_limit, dead): apply
-- one receipt to the record `key` (its message at `body`); returns whether it changed and
-- the status it found.
local function receipt_step(key, body, new, note, reason, now, retention, history_limit,
                            dead)
  local cur = redis.call('HGET', key, 'status')
  if not cur then return false, '' end
  local from = RECEIPT_FROM[new]
  if not from or not from[cur] then return false, cur end
  redis.call('HSET', key, 'status', new, 'updated', now)
  if reason ~= '' then redis.call('HSET', key, 'reason', reason) end
  local history = cjson.decode(redis.call('HGET', key, 'history') or '[]')
  table.insert(history, {tonumber(now), new, note})
  while #history > history_limit do table.remove(history, 1) end
  redis.call('HSET', key, 'history', cjson.encode(history))
  if DEAD[new] then
    -- A send zapw accepted and then failed: a dead letter, kept for an operator.
    redis.call('ZADD', dead, now, redis.call('HGET', key, 'id'))
    redis.call('PERSIST', key)
    redis.call('PERSIST', body)
  else
    redis.call('EXPIRE', key, retention)
    redis.call('EXPIRE', body, retention)
  end
  return true, cur
end

-- apply_kept_receipts(key, body, kept, now, retention, history_limit, dead): the receipts that
-- came before the record knew zapw's id (kept at `kept`, status -> note and reason), in
-- the order a message lives them; the kept key goes. Returns the status they left.
local function apply_kept_receipts(key, body, kept, now, retention, history_limit, dead)
  local found = redis.call('HGETALL', kept)
  if #found == 0 then return nil end
  local notes = {}
  for i = 1, #found, 2 do notes[found[i]] = found[i + 1] end
  local last = nil
  for _, status in ipairs(RECEIPT_ORDER) do
    local kept_note = notes[status]
    if kept_note then
      local note, reason = string.match(kept_note, '^([^\n]*)\n?(.*)$')
      if receipt_step(key, body, status, note .. ' (arrived before sent)', reason, now,
                      retention, history_limit, dead) then
        last = status
      end
    end
  end
  redis.call('DEL', kept)
  return last
end
