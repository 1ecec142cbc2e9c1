-- KEYS[1] the sessions hash. ARGV[1] session id, ARGV[2] the time the caller learnt it is
-- missing (epoch s), ARGV[3] the state to write (JSON). Refused when the state changed
-- after ARGV[2] (the session came back meanwhile).
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  local state = cjson.decode(raw)
  if type(state.updated) == 'number' and state.updated > tonumber(ARGV[2]) then return 0 end
  if state.status == 'missing' then return 1 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
