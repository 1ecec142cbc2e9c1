"""Dead letters: messages that will not be sent without an operator's replay.

A dead letter is the message's own record, in status `failed` or `expired`, kept without
expiry and listed in one sorted index by the time it died. Replaying one goes through the
outbox (it has to publish); listing and purging are here.
"""

from __future__ import annotations

import redis

from zapa_bridge.outbound.status_store import DEAD_STATUSES, PREFIX, MessageRecord, StatusStore

DEAD_INDEX = f"{PREFIX}dead"

_PURGE = """
local removed = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. 'msg:' .. id
  local status = redis.call('HGET', key, 'status')
  if status == 'failed' or status == 'expired' or not status then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], id)
    removed = removed + 1
  end
end
return removed
"""


class DeadLetters:
    """List, count and purge dead letters."""

    def __init__(self, store: StatusStore) -> None:
        self.store = store
        self._purge = store.redis.register_script(_PURGE)

    def count(self) -> int:
        return self.count_in(self.store.redis)

    @staticmethod
    def count_in(client: redis.Redis) -> int:
        return int(client.zcard(DEAD_INDEX))

    def list(self, limit: int = 100, offset: int = 0) -> list[MessageRecord]:
        """Newest first, with the reason, attempts and the full message."""
        ids = self.store.redis.zrevrange(DEAD_INDEX, offset, offset + limit - 1)
        return [record for record in self.store.get_many(ids) if record.status in DEAD_STATUSES]

    def purge(self) -> int:
        """Delete every dead letter and its record; returns how many went."""
        return int(self._purge(keys=[DEAD_INDEX], args=[PREFIX]))
