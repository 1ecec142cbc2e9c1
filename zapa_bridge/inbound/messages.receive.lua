-- KEYS[1] the record, KEYS[2] recent ids, KEYS[3] the queue (KEYS[1] when none).
-- ARGV[1] the message (JSON), ARGV[2] received (epoch s), ARGV[3] its type, ARGV[4]
-- retention (s), ARGV[5] its id, ARGV[6] how many recent ids are kept, ARGV[7] the task
-- it goes to ('' none), ARGV[8] the task message.
-- Record and hand on, once (see record_inbound). Returns 1 when this call handed it on.
return record_inbound(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3],
                      tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8])
