"""Dead letters: messages that will not be sent without an operator's replay.

A dead letter is the message's own record, in status `failed` or `expired`, kept without
expiry and listed in one sorted index by the time it died. Replaying one goes through the
outbox (it has to publish); listing and purging are here.
"""

from __future__ import annotations

import redis

from zapa_bridge.outbound.status_store import (
    DEAD_STATUSES,
    LUA_STATUSES,
    MessageRecord,
    StatusStore,
)
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.replies import texts

PURGE_BATCH = 500  # ids per purge call, each with its two keys in KEYS

_PURGE = LUA_STATUSES + scripts.read(__package__, "dead_letters.purge.lua")


class DeadLetters:
    """List, count and purge dead letters."""

    def __init__(self, store: StatusStore) -> None:
        self.store = store
        self._purge = store.redis.register_script(_PURGE)

    def count(self) -> int:
        return self.count_in(self.store.redis)

    @staticmethod
    def count_in(client: redis.Redis) -> int:
        return int(client.zcard(keys.DEAD))

    def list(self, limit: int = 100, offset: int = 0) -> list[MessageRecord]:
        """Newest first, with the reason, attempts and the full message."""
        ids = texts(self.store.redis.zrevrange(keys.DEAD, offset, offset + limit - 1))
        return [record for record in self.store.get_many(ids) if record.status in DEAD_STATUSES]

    def purge(self) -> int:
        """Delete every dead letter, its record and its message body; returns how many
        went."""
        ids = texts(self.store.redis.zrange(keys.DEAD, 0, -1))
        removed = 0
        for start in range(0, len(ids), PURGE_BATCH):
            batch = ids[start:start + PURGE_BATCH]
            pairs = [key for message_id in batch
                     for key in (keys.message(message_id), keys.message_body(message_id))]
            removed += int(self._purge(keys=[keys.DEAD, *pairs], args=batch))
        return removed
