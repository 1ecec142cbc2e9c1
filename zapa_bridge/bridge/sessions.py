"""What we know of the bridge's sessions: status, phone number, name, last event, kept in
Redis.

Two sources feed it: session webhooks (`apply_event`, ordered by the event's timestamp so a
late, older event never overwrites a newer one) and the reconciliation's `GET /sessions`
snapshot (`replace_from_bridge`, authoritative for the status at that moment). Workers read
it to pick the session that owns a sender number and to hold sends for offline sessions.

A session the bridge no longer has is kept as `missing` rather than dropped: zapw forgets
sessions on a restart, and a send to one of them must wait for it to come back, not fail
as if its id were wrong. A session missing for longer than `MISSING_KEPT` is forgotten.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields

import redis
from redis.typing import EncodableT, FieldT

from zapa_bridge.bridge.client import SessionInfo
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.replies import optional_text, texts

MISSING = "missing"
MISSING_REASON = "session missing on bridge"
# How long a session the bridge lost is remembered (seconds): sends to it are held, not
# failed, for that long.
MISSING_KEPT = 86400.0

_APPLY_EVENT = scripts.read(__package__, "sessions.apply_event.lua")

_MARK_MISSING = scripts.read(__package__, "sessions.mark_missing.lua")


@dataclass(frozen=True, slots=True)
class SessionState:
    id: str
    status: str
    phone_number: str | None = None
    name: str | None = None
    updated: float = 0.0
    event_at: float | None = None
    reason: str | None = None
    missing_since: float | None = None

    @property
    def connected(self) -> bool:
        return self.status == "connected"

    @property
    def missing(self) -> bool:
        return self.status == MISSING

    @classmethod
    def from_json(cls, raw: str) -> SessionState:
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        """Stored form: fields that are unknown are left out rather than written as null."""
        return json.dumps({key: value for key, value in self.as_dict().items()
                           if value is not None})


class SessionRegistry:
    """Session states by id, and session ids by phone number."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._apply = client.register_script(_APPLY_EVENT)
        self._mark_missing = client.register_script(_MARK_MISSING)

    def apply_event(self, session_id: str, status: str, *, at: int,
                    phone_number: str | None = None, name: str | None = None,
                    reason: str | None = None) -> bool:
        """Record a session event; False when a newer event was already recorded."""
        changes: dict[str, object] = {"status": status, "updated": time.time(),
                                      "reason": reason, "missing_since": None}
        if phone_number:
            changes["phone_number"] = phone_number
        if name:
            changes["name"] = name
        applied = self._apply(keys=[keys.SESSIONS, keys.SESSION_PHONES,
                                    keys.SESSION_FIRST_CONNECTED],
                              args=[session_id, int(at), json.dumps(changes)])
        return bool(applied)

    def replace_from_bridge(self, sessions: list[SessionInfo], *,
                            missing_kept: float = MISSING_KEPT) -> list[SessionState]:
        """Make the registry what the bridge says now; returns the sessions we knew that the
        bridge no longer has, which are kept as `missing` (for `missing_kept` seconds).

        The last webhook's time and disconnect reason are kept, so event ordering still
        holds after a snapshot.
        """
        previous = {state.id: state for state in self.all()}
        now = time.time()
        states = {}
        for info in sessions:
            before = previous.get(info.id)
            states[info.id] = SessionState(
                info.id, info.status,
                info.phone_number or (before.phone_number if before else None),
                info.name or (before.name if before else None), now,
                before.event_at if before else None,
                before.reason if before and not info.connected and not before.missing
                else None,
            )
        missing = []
        for session_id, before in previous.items():
            if session_id in states:
                continue
            since = before.missing_since or now
            if now - since > missing_kept:
                continue
            states[session_id] = SessionState(
                session_id, MISSING, before.phone_number, before.name,
                before.updated if before.missing else now, before.event_at, MISSING_REASON,
                since)
            missing.append(states[session_id])
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.SESSIONS, keys.SESSION_PHONES)
        if states:
            pipe.hset(keys.SESSIONS, mapping={sid: state.to_json()
                                             for sid, state in states.items()})
            # Annotated: redis-py's `mapping` has an invariant key type, so a dict[str, str]
            # does not fit it.
            phones: dict[FieldT, EncodableT] = {
                state.phone_number: sid for sid, state in states.items() if state.phone_number}
            if phones:
                pipe.hset(keys.SESSION_PHONES, mapping=phones)
        pipe.execute()
        return missing

    def mark_missing(self, session_id: str, *, learnt_at: float) -> bool:
        """The bridge answered 404 for a session we know: it lost it (a restart). Refused
        (False) when the session's state changed after `learnt_at`: it came back since."""
        before = self.get(session_id)
        now = time.time()
        state = SessionState(
            session_id, MISSING, before.phone_number if before else None,
            before.name if before else None, now, before.event_at if before else None,
            MISSING_REASON, now)
        return bool(self._mark_missing(keys=[keys.SESSIONS],
                                       args=[session_id, repr(learnt_at), state.to_json()]))

    def forget(self, session_id: str) -> None:
        """Drop a session deleted on purpose: sends to it fail from now on, and one made
        again under its id starts a warm-up of its own."""
        state = self.get(session_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(keys.SESSIONS, session_id)
        pipe.hdel(keys.SESSION_FIRST_CONNECTED, session_id)
        if state is not None and state.phone_number:
            pipe.hdel(keys.SESSION_PHONES, state.phone_number)
        pipe.execute()

    def get(self, session_id: str) -> SessionState | None:
        raw = optional_text(self.redis.hget(keys.SESSIONS, session_id))
        return SessionState.from_json(raw) if raw else None

    def all(self) -> list[SessionState]:
        raws = texts(self.redis.hvals(keys.SESSIONS))
        return sorted((SessionState.from_json(raw) for raw in raws), key=lambda state: state.id)

    def first_connected(self, session_id: str) -> float | None:
        """When the registry first saw the session connected (epoch s), if it did."""
        raw = optional_text(self.redis.hget(keys.SESSION_FIRST_CONNECTED, session_id))
        return float(raw) if raw else None

    def session_for_phone(self, phone_number: str) -> str | None:
        return optional_text(self.redis.hget(keys.SESSION_PHONES, phone_number))
