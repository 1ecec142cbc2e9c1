-- KEYS[1] the seen key, KEYS[2] the stats hash, KEYS[3..5] record_inbound's keys (the
-- record, recent ids, the queue: messages.receive.lua's KEYS[1..3]), KEYS[6..8]
-- join_burst's keys (the sender's burst list, its burst state, the bursts' due set).
-- ARGV[1] this intake's token, ARGV[2] the dedupe TTL (s), ARGV[3] the event type (stats
-- field), ARGV[4] the taken mark, ARGV[5..12] record_inbound's arguments
-- (messages.receive.lua's ARGV[1..8]), ARGV[13] the sender (the due set's member), ARGV[14]
-- now (epoch s), ARGV[15] the window (s), ARGV[16] the cap (s), ARGV[17] '1' when the
-- message may join a burst.
-- Dedupe a `message.received`, record it, and put it in its sender's bursts or hand it to
-- the inbound task at once, as one step. Returns {answer, 1 handed on now | 2 waits in a
-- burst | 0 handed on before}.
local answer, found = already_taken(KEYS[1], ARGV[1], ARGV[4], KEYS[2], ARGV[3])
if answer then return {answer, 0} end
local waits = 0
-- A message recorded and handed on (or put in a burst) before, by the event task, is not
-- put in a burst again.
if redis.call('HEXISTS', KEYS[3], 'routed') == 0 then
  waits = join_burst(KEYS[6], KEYS[7], KEYS[8], ARGV[13], ARGV[5], ARGV[9],
                     tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16]),
                     ARGV[17] == '1')
end
-- Waiting in a burst, it is marked as handed on to its task with nothing pushed: the
-- burst's hand-on pushes it.
local payload = ARGV[12]
if waits == 1 then payload = '' end
local handed = record_inbound(KEYS[3], KEYS[4], KEYS[5], ARGV[5], ARGV[6], ARGV[7],
                              tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10]), ARGV[11],
                              payload)
mark_taken(KEYS[1], ARGV[1], ARGV[4], ARGV[2], found, KEYS[2], ARGV[3])
if handed == 1 and waits == 1 then handed = 2 end
return {'accepted', handed}
