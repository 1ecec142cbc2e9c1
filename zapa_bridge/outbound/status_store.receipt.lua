-- No KEYS nor ARGV: functions of the scripts that apply zapw's receipts (the webhook
-- intake's, the receipt handler's) and of the `sent` change, which applies the receipts
-- kept for it. `RECEIPT_FROM` (status -> the statuses it may follow) and `RECEIPT_ORDER`
-- (the order kept receipts are applied in) are prepended from status_store.py.
-- A receipt moves a record only forward: sent -> delivered -> read, or sent -> failed.
-- A record sent in parts (a long text, its `parts` field: one {id, status} per part) is
-- moved part by part: the receipt moves the part with zapw's id `bridge_id`, and the record
-- follows its least advanced part once every part is sent; one failed part fails it.

local PART_RANK = {[S.SENT] = 1, [S.DELIVERED] = 2, [S.READ] = 3}

-- part_receipt(key, new, reason, bridge_id): move the part `bridge_id` of the record `key`
-- to `new`; returns nil when the record is not sent in parts (or no id is known), else
-- whether the part moved and the status its record follows ('' while a part is unsent).
local function part_receipt(key, new, reason, bridge_id)
  if not bridge_id or bridge_id == '' then return nil end
  local raw = redis.call('HGET', key, 'parts')
  if not raw then return nil end
  local parts = cjson.decode(raw)
  local moved = false
  for _, part in ipairs(parts) do
    local from = RECEIPT_FROM[new]
    if part.id == bridge_id and from and from[part.status] then
      part.status = new
      if reason ~= '' then part.reason = reason end
      moved = true
    end
  end
  if not moved then return false, '' end
  redis.call('HSET', key, 'parts', cjson.encode(parts))
  local least = nil
  for _, part in ipairs(parts) do
    if part.status == S.FAILED then return true, S.FAILED end
    local rank = PART_RANK[part.status]
    if not rank then least = '' elseif least ~= '' and (not least or rank < PART_RANK[least]) then
      least = part.status
    end
  end
  return true, least or ''
end

-- receipt_step(key, body, new, note, reason, now, retention, history_limit, dead,
-- bridge_id): apply one receipt, for zapw's id `bridge_id`, to the record `key` (its message
-- at `body`); returns whether it changed (the record or one of its parts), the status it
-- found, and the status the record has now.
local function receipt_step(key, body, new, note, reason, now, retention, history_limit,
                            dead, bridge_id)
  local cur = redis.call('HGET', key, 'status')
  if not cur then return false, '' end
  local part_moved, follows = part_receipt(key, new, reason, bridge_id)
  if part_moved ~= nil then
    if not part_moved then return false, cur, cur end
    if follows == '' or follows == cur then return true, cur, cur end
    new = follows
  end
  local from = RECEIPT_FROM[new]
  if not from or not from[cur] then return part_moved == true, cur, cur end
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
  return true, cur, new
end

-- merged_parts(stored, given): the parts a change writes (`given`, JSON) with what receipts
-- did meanwhile to the parts it read (`stored`, JSON): a part zapw took keeps the furthest
-- status it reached under the same id.
local function merged_parts(stored, given)
  local before, parts = cjson.decode(stored), cjson.decode(given)
  for i, part in ipairs(parts) do
    local was = before[i]
    if was and part.id and was.id == part.id and part.status == S.SENT
        and (was.status == S.FAILED or (PART_RANK[was.status] or 0) > 1) then
      parts[i] = was
    end
  end
  return cjson.encode(parts)
end

-- apply_kept_receipts(key, body, kept, now, retention, history_limit, dead, bridge_id): the
-- receipts that came before the record knew zapw's id `bridge_id` (kept at `kept`, status
-- -> note and reason), in the order a message lives them; the kept key goes. Returns the
-- status they left.
local function apply_kept_receipts(key, body, kept, now, retention, history_limit, dead,
                                   bridge_id)
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
                      retention, history_limit, dead, bridge_id) then
        last = status
      end
    end
  end
  redis.call('DEL', kept)
  return last
end
