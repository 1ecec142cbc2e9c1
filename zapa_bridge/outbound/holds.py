"""Messages held, indexed per session: because their session is not connected (released
when it connects), or because it reached its daily limit (reason `daily limit`: released by
the due set at the next UTC midnight, see zapa_bridge.outbound.pacing).

The index itself is written by the status store's transition script, together with the
status; this module only reads it.
"""

from __future__ import annotations

import redis

from zapa_bridge.outbound.status_store import MessageRecord, MessageStatus
from zapa_bridge.store import keys
from zapa_bridge.store.replies import text_set, texts

# The reason of a message held for its session's daily limit.
DAILY_LIMIT = "daily limit"


def waits_for_its_day(record: MessageRecord) -> bool:
    """Whether a record is held for its session's daily limit: the due set releases it when
    its day comes, not a connect, and no hold validity ends it."""
    return record.status is MessageStatus.HELD and record.reason == DAILY_LIMIT


class HeldMessages:
    """Read access to the held-message index."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def sessions(self) -> list[str]:
        """Sessions that have at least one held message."""
        return sorted(text_set(self.redis.smembers(keys.HELD_SESSIONS)))

    def ids(self, session: str, limit: int = 1000) -> list[str]:
        """Held message ids of a session, oldest first."""
        return list(texts(self.redis.zrange(keys.held(session), 0, limit - 1)))

    def held_before(self, session: str, cutoff: float, limit: int = 1000) -> list[str]:
        """Held message ids of a session that were held at or before `cutoff` (epoch s)."""
        return list(texts(self.redis.zrangebyscore(keys.held(session), "-inf", cutoff, 0,
                                                  limit)))

    def count(self, session: str) -> int:
        return int(self.redis.zcard(keys.held(session)))

    def counts(self) -> dict[str, int]:
        """Held messages per session."""
        return {session: self.count(session) for session in self.sessions()}
