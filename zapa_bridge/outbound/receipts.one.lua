-- KEYS[1] zapw's id -> ours, KEYS[2] the receipts kept for zapw's id, KEYS[3] dead letters.
-- ARGV[1] the status, ARGV[2] the history note, ARGV[3] the reason ('' none), ARGV[4] now,
-- ARGV[5] retention (s), ARGV[6] history limit, ARGV[7] record key prefix, ARGV[8] how long
-- a kept receipt waits for its record (s), ARGV[9] '1' to return the record's traceparent,
-- ARGV[10] message body key prefix, ARGV[11] zapw's id.
-- One receipt, applied or kept (see receive_receipt): the receipt handler's call.
return receive_receipt(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                       tonumber(ARGV[5]), tonumber(ARGV[6]), KEYS[3], ARGV[7],
                       tonumber(ARGV[8]), ARGV[9], ARGV[10], ARGV[11])
