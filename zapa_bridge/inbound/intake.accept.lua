-- KEYS[1] the seen key, KEYS[2] the queue, KEYS[3] the stats hash.
-- ARGV[1] this intake's token, ARGV[2] the dedupe TTL (s), ARGV[3] the task message,
-- ARGV[4] the event type (stats field), ARGV[5] the queued mark.
-- Dedupe and queue as one atomic step.
-- The seen key holds the token of the intake that set it, then the token's queued mark once
-- its message is on the queue: a call repeated by the client after its answer was lost finds
-- its own mark and neither pushes again nor answers duplicate; a spooled event replayed with
-- its token does the same.
local seen = redis.call('GET', KEYS[1])
local queued = ARGV[1] .. ARGV[5]
if seen == queued then
    return 'accepted'
end
if seen and seen ~= ARGV[1] then
    redis.call('HINCRBY', KEYS[3], ARGV[4] .. ':duplicate', 1)
    return 'duplicate'
end
-- Push before marking: a refused push (an ACL, out of memory) then leaves no key claiming
-- an event that was not queued (Redis does not roll a script back).
redis.call('LPUSH', KEYS[2], ARGV[3])
if seen then
    redis.call('SET', KEYS[1], queued, 'KEEPTTL')
else
    redis.call('SET', KEYS[1], queued, 'EX', ARGV[2])
end
redis.call('HINCRBY', KEYS[3], ARGV[4] .. ':accepted', 1)
return 'accepted'
