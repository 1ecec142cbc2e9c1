"""What we know of the bridge's sessions: status, phone number, name, last event, kept in
Redis.

Two sources feed it: session webhooks (`apply_event`, ordered by the event's timestamp so a
late, older event never overwrites a newer one) and the reconciliation's `GET /sessions`
snapshot (`replace_from_bridge`, authoritative for the status at that moment). Workers read
it to pick the session that owns a sender number and to hold sends for offline sessions.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields

import redis

from zapa_bridge.bridge_client import SessionInfo
from zapa_bridge.status_store import PREFIX

SESSIONS_KEY = f"{PREFIX}sessions"
PHONES_KEY = f"{PREFIX}session-phones"

_APPLY_EVENT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local state = raw and cjson.decode(raw) or {id = ARGV[1]}
local at = tonumber(ARGV[2])
if state.event_at and tonumber(state.event_at) > at then return 0 end
for k, v in pairs(cjson.decode(ARGV[3])) do state[k] = v end
state.event_at = at
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(state))
if state.phone_number and state.phone_number ~= cjson.null and state.phone_number ~= '' then
  redis.call('HSET', KEYS[2], state.phone_number, ARGV[1])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class SessionState:
    id: str
    status: str
    phone_number: str | None = None
    name: str | None = None
    updated: float = 0.0
    event_at: float | None = None
    reason: str | None = None

    @property
    def connected(self) -> bool:
        return self.status == "connected"

    @classmethod
    def from_json(cls, raw: str) -> SessionState:
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class SessionRegistry:
    """Session states by id, and session ids by phone number."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._apply = client.register_script(_APPLY_EVENT)

    def apply_event(self, session_id: str, status: str, *, at: float,
                    phone_number: str | None = None, name: str | None = None,
                    reason: str | None = None) -> bool:
        """Record a session event; False when a newer event was already recorded."""
        changes: dict[str, object] = {"status": status, "updated": time.time(),
                                      "reason": reason}
        if phone_number:
            changes["phone_number"] = phone_number
        if name:
            changes["name"] = name
        applied = self._apply(keys=[SESSIONS_KEY, PHONES_KEY],
                              args=[session_id, at, json.dumps(changes)])
        return bool(applied)

    def replace_from_bridge(self, sessions: list[SessionInfo]) -> None:
        """Make the registry what the bridge says now; sessions it no longer has are dropped.

        The last webhook's time and disconnect reason are kept, so event ordering still
        holds after a snapshot.
        """
        previous = {state.id: state for state in self.all()}
        now = time.time()
        states = {}
        for info in sessions:
            before = previous.get(info.id)
            states[info.id] = SessionState(
                info.id, info.status, info.phone_number or (before and before.phone_number),
                info.name or (before and before.name), now,
                before.event_at if before else None,
                before.reason if before and not info.connected else None,
            )
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(SESSIONS_KEY, PHONES_KEY)
        if states:
            pipe.hset(SESSIONS_KEY, mapping={sid: json.dumps(state.as_dict())
                                             for sid, state in states.items()})
            phones = {state.phone_number: sid for sid, state in states.items()
                      if state.phone_number}
            if phones:
                pipe.hset(PHONES_KEY, mapping=phones)
        pipe.execute()

    def get(self, session_id: str) -> SessionState | None:
        raw = self.redis.hget(SESSIONS_KEY, session_id)
        return SessionState.from_json(raw) if raw else None

    def all(self) -> list[SessionState]:
        return sorted((SessionState.from_json(raw) for raw in self.redis.hvals(SESSIONS_KEY)),
                      key=lambda state: state.id)

    def session_for_phone(self, phone_number: str) -> str | None:
        return self.redis.hget(PHONES_KEY, phone_number)
