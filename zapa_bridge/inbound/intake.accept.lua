-- KEYS[1] the seen key, KEYS[2] the queue, KEYS[3] the stats hash.
-- ARGV[1] this intake's token, ARGV[2] the dedupe TTL (s), ARGV[3] the task message,
-- ARGV[4] the event type (stats field), ARGV[5] the taken mark.
-- Dedupe and queue the event's `handle_event` task as one atomic step.
local answer, found = already_taken(KEYS[1], ARGV[1], ARGV[5], KEYS[3], ARGV[4])
if answer then return answer end
redis.call('LPUSH', KEYS[2], ARGV[3])
mark_taken(KEYS[1], ARGV[1], ARGV[5], ARGV[2], found, KEYS[3], ARGV[4])
return 'accepted'
