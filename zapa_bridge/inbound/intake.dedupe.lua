-- No KEYS nor ARGV: the deduplication every intake script opens and closes with.
-- The seen key holds the token of the intake that set it, then the token's taken mark once
-- its event is applied or queued: a call repeated by the client after its answer was lost
-- finds its own mark and neither applies again nor answers duplicate; a spooled event
-- replayed with its token does the same.
-- already_taken(seen, token, mark, stats, stats_type): 'accepted' (this very event, again)
-- or 'duplicate' (counted), else nil: the caller takes the event in. Also what seen held.
local function already_taken(seen, token, mark, stats, stats_type)
  local found = redis.call('GET', seen)
  if found == token .. mark then return 'accepted', found end
  if found and found ~= token then
    redis.call('HINCRBY', stats, stats_type .. ':duplicate', 1)
    return 'duplicate', found
  end
  return nil, found
end

-- mark_taken(seen, token, mark, ttl, found, stats, stats_type): after the event's writes
-- (a refused write, out of memory say, then leaves no key claiming an event that was not
-- taken in: Redis does not roll a script back). A key an earlier call of this token set
-- keeps its time to live.
local function mark_taken(seen, token, mark, ttl, found, stats, stats_type)
  if found then
    redis.call('SET', seen, token .. mark, 'KEEPTTL')
  else
    redis.call('SET', seen, token .. mark, 'EX', ttl)
  end
  redis.call('HINCRBY', stats, stats_type .. ':accepted', 1)
end
