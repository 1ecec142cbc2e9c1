-- KEYS[1] the seen key, KEYS[2] the stats hash, KEYS[3..5] receive_receipt's keys (zapw's
-- id -> ours, the receipts kept for it, dead letters: receipts.one.lua's KEYS[1..3]).
-- ARGV[1] this intake's token, ARGV[2] the dedupe TTL (s), ARGV[3] the event type (stats
-- field), ARGV[4] the taken mark, ARGV[5..15] receive_receipt's arguments
-- (receipts.one.lua's ARGV[1..11]).
-- Dedupe a receipt and apply it to the record it names (or keep it), as one step.
-- Returns {answer, then receive_receipt's four values ('' when not applied here)}.
local answer, found = already_taken(KEYS[1], ARGV[1], ARGV[4], KEYS[2], ARGV[3])
if answer then return {answer, '', '', '', ''} end
local result = receive_receipt(KEYS[3], KEYS[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8],
                               tonumber(ARGV[9]), tonumber(ARGV[10]), KEYS[5], ARGV[11],
                               tonumber(ARGV[12]), ARGV[13], ARGV[14], ARGV[15])
mark_taken(KEYS[1], ARGV[1], ARGV[4], ARGV[2], found, KEYS[2], ARGV[3])
return {'accepted', result[1], result[2], result[3], result[4]}
