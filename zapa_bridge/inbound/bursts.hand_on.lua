-- KEYS[1] the bursts' due set, KEYS[2] the sender's burst list, KEYS[3] its burst state,
-- KEYS[4] the inbound task's queue, KEYS[5] the metrics counters.
-- ARGV[1] the sender (the due set's member), ARGV[2] now (epoch s), ARGV[3] the id of the
-- burst handed on, ARGV[4] how many messages it holds, ARGV[5] its task message ('' when
-- no task is configured: the messages are dropped, recorded as they are), ARGV[6] '1'
-- when it is a burst (else a message that waited alone), ARGV[7] the bursts counter,
-- ARGV[8] the coalesced messages counter.
-- Hand on the sender's oldest burst, as read by the caller, if it is still due and still
-- the same (no other worker handed it on, no message joined it since): push its task and
-- drop its messages in one step, so a crash leaves it whole or handed on, and two workers
-- never both push it. Then the sender's next burst, if any, is due at its close (at once
-- when a later one exists). Returns 1 when this call handed it on.
local due, list, state, member = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local now, burst, size = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
if redis.call('LLEN', list) == 0 then
  redis.call('ZREM', due, member)
  redis.call('DEL', state)
  return 0
end
local score = redis.call('ZSCORE', due, member)
if not score or tonumber(score) > now then return 0 end
if burst_of(list, 0) ~= burst or burst_of(list, size - 1) ~= burst
    or burst_of(list, size) == burst then
  return 0
end
if ARGV[5] ~= '' then redis.call('LPUSH', KEYS[4], ARGV[5]) end
redis.call('LTRIM', list, size, -1)
if ARGV[6] == '1' then
  redis.call('HINCRBY', KEYS[5], ARGV[7], 1)
  redis.call('HINCRBY', KEYS[5], ARGV[8], size)
end
local head = burst_of(list, 0)
if not head then
  redis.call('ZREM', due, member)
  redis.call('DEL', state)
  return 1
end
local latest = redis.call('HMGET', state, 'open', 'close')
local close = now
if head == latest[1] and tonumber(latest[2]) then close = tonumber(latest[2]) end
redis.call('ZADD', due, close, member)
return 1
