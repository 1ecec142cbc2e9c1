"""What we know of the bridge's sessions: status and phone number, kept in Redis.

Filled from `GET /sessions` by the reconciliation (and by session webhooks), and read to pick
the session that owns a sender number.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis

from zapa_bridge.bridge_client import SessionInfo
from zapa_bridge.status_store import PREFIX

SESSIONS_KEY = f"{PREFIX}sessions"
PHONES_KEY = f"{PREFIX}session-phones"


@dataclass(frozen=True, slots=True)
class SessionState:
    id: str
    status: str
    phone_number: str | None = None
    name: str | None = None
    updated: float = 0.0

    @property
    def connected(self) -> bool:
        return self.status == "connected"


class SessionRegistry:
    """Session states by id, and session ids by phone number."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def replace_from_bridge(self, sessions: list[SessionInfo]) -> None:
        """Make the registry what the bridge says now; sessions it no longer has are dropped."""
        now = time.time()
        states = {info.id: SessionState(info.id, info.status, info.phone_number, info.name, now)
                  for info in sessions}
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(SESSIONS_KEY, PHONES_KEY)
        if states:
            pipe.hset(SESSIONS_KEY, mapping={sid: json.dumps(asdict(state))
                                             for sid, state in states.items()})
            phones = {state.phone_number: sid for sid, state in states.items()
                      if state.phone_number}
            if phones:
                pipe.hset(PHONES_KEY, mapping=phones)
        pipe.execute()

    def get(self, session_id: str) -> SessionState | None:
        raw = self.redis.hget(SESSIONS_KEY, session_id)
        return SessionState(**json.loads(raw)) if raw else None

    def all(self) -> list[SessionState]:
        return sorted((SessionState(**json.loads(raw))
                       for raw in self.redis.hvals(SESSIONS_KEY)), key=lambda s: s.id)

    def session_for_phone(self, phone_number: str) -> str | None:
        return self.redis.hget(PHONES_KEY, phone_number)

    def refreshed_at(self) -> float:
        """When the registry was last filled from the bridge (0 if never)."""
        return max((state.updated for state in self.all()), default=0.0)
