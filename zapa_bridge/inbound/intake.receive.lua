-- KEYS[1] the seen key, KEYS[2] the stats hash, KEYS[3..5] record_inbound's keys (the
-- record, recent ids, the queue: messages.receive.lua's KEYS[1..3]).
-- ARGV[1] this intake's token, ARGV[2] the dedupe TTL (s), ARGV[3] the event type (stats
-- field), ARGV[4] the taken mark, ARGV[5..12] record_inbound's arguments
-- (messages.receive.lua's ARGV[1..8]).
-- Dedupe a `message.received`, record it and hand it to the inbound task, as one step.
local answer, found = already_taken(KEYS[1], ARGV[1], ARGV[4], KEYS[2], ARGV[3])
if answer then return {answer, 0} end
local handed = record_inbound(KEYS[3], KEYS[4], KEYS[5], ARGV[5], ARGV[6], ARGV[7],
                              tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10]), ARGV[11],
                              ARGV[12])
mark_taken(KEYS[1], ARGV[1], ARGV[4], ARGV[2], found, KEYS[2], ARGV[3])
return {'accepted', handed}
