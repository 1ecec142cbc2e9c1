-- KEYS[1] the sessions hash, KEYS[2] the phone -> session hash, KEYS[3] the hash session ->
-- when first seen connected (epoch s).
-- ARGV[1] session id, ARGV[2] the event's time (epoch ms), ARGV[3] the changes (JSON).
-- A state written by a snapshot has no event time (or a JSON null): any event applies.
-- The first `connected` ever applied for a session is kept: a number's warm-up counts its
-- days from it (zapa_bridge.outbound.pacing).
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local state = raw and cjson.decode(raw) or {id = ARGV[1]}
local at = tonumber(ARGV[2])
local last = state.event_at
if type(last) == 'number' and last > at then return 0 end
for k, v in pairs(cjson.decode(ARGV[3])) do state[k] = v end
state.event_at = at
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(state))
if type(state.phone_number) == 'string' and state.phone_number ~= '' then
  redis.call('HSET', KEYS[2], state.phone_number, ARGV[1])
end
if state.status == 'connected' then
  redis.call('HSETNX', KEYS[3], ARGV[1], tostring(at / 1000))
end
return 1
