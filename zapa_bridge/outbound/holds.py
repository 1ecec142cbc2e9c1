"""Messages held because their session is not connected, indexed per session.

The index itself is written by the status store's transition script, together with the
status; this module only reads it.
"""

from __future__ import annotations

import redis

from zapa_bridge.outbound.status_store import PREFIX

HELD_SESSIONS = f"{PREFIX}held-sessions"


def held_key(session: str) -> str:
    return f"{PREFIX}held:{session}"


class HeldMessages:
    """Read access to the held-message index."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def sessions(self) -> list[str]:
        """Sessions that have at least one held message."""
        return sorted(self.redis.smembers(HELD_SESSIONS))

    def ids(self, session: str, limit: int = 1000) -> list[str]:
        """Held message ids of a session, oldest first."""
        return list(self.redis.zrange(held_key(session), 0, limit - 1))

    def held_before(self, session: str, cutoff: float, limit: int = 1000) -> list[str]:
        """Held message ids of a session that were held at or before `cutoff` (epoch s)."""
        return list(self.redis.zrangebyscore(held_key(session), "-inf", cutoff, 0, limit))

    def count(self, session: str) -> int:
        return int(self.redis.zcard(held_key(session)))

    def counts(self) -> dict[str, int]:
        """Held messages per session."""
        return {session: self.count(session) for session in self.sessions()}
