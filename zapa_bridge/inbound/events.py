"""zapw's webhook envelope: parsed, checked, and keyed for deduplication."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from zapa_bridge.errors import InvalidEvent

MESSAGE_RECEIVED = "message.received"
STATUS_EVENTS = frozenset({"message.sent", "message.delivered", "message.read",
                           "message.failed"})
SESSION_EVENTS = frozenset({"session.connected", "session.disconnected", "connection.status"})
KNOWN_EVENTS = frozenset({MESSAGE_RECEIVED}) | STATUS_EVENTS | SESSION_EVENTS
# JavaScript's largest exact integer: zapw's `Date.now()` never comes near it, and every
# store downstream (Lua numbers, JSON) keeps it exactly.
MAX_EPOCH_MS = 2**53 - 1


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event as zapw posted it; `envelope` is the body, kept whole for the queue."""

    session: str
    event_type: str
    data: dict[str, Any]
    timestamp: int | None
    origin: str | None
    envelope: dict[str, Any]

    @property
    def known(self) -> bool:
        return self.event_type in KNOWN_EVENTS

    def dedupe_key(self) -> str:
        """Same event, same key: zapw's redeliveries and concurrent duplicates collapse.

        Messages by id (status events by id and status), session events by their
        timestamp; an event without those falls back to its whole body, which a
        redelivery repeats byte for byte.
        """
        data = self.data
        if self.event_type == MESSAGE_RECEIVED and data.get("messageId"):
            parts = [data["messageId"]]
        elif self.event_type in STATUS_EVENTS and data.get("messageId"):
            parts = [data["messageId"], data.get("status", "")]
        elif self.event_type in SESSION_EVENTS and self.timestamp is not None:
            parts = [self.timestamp]
        else:
            parts = [json.dumps(self.envelope, sort_keys=True, separators=(",", ":"))]
        raw = "\x1f".join(str(part) for part in [self.session, self.event_type, *parts])
        return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def parse_event(payload: Any) -> WebhookEvent:
    """Check zapw's envelope (`sessionId`, `eventType`, `data`) or raise `InvalidEvent`."""
    if not isinstance(payload, dict):
        raise InvalidEvent("body", "must be a JSON object")
    for field in ("sessionId", "eventType", "data"):
        if field not in payload:
            raise InvalidEvent(field, "is required")
    session = payload["sessionId"]
    # zapw takes any JSON value as a session id; numbers are seen in practice.
    if isinstance(session, bool) or not isinstance(session, str | int | float) or session == "":
        raise InvalidEvent("sessionId", "must be a non-empty string or a number")
    event_type = payload["eventType"]
    if not isinstance(event_type, str) or not event_type:
        raise InvalidEvent("eventType", "must be a non-empty string")
    if not isinstance(payload["data"], dict):
        raise InvalidEvent("data", "must be an object")
    timestamp = epoch_ms(payload.get("timestamp"))
    if payload.get("timestamp") is not None and timestamp is None:
        raise InvalidEvent("timestamp", "must be epoch milliseconds")
    origin = payload.get("origin")
    return WebhookEvent(
        session=_session_id(session),
        event_type=event_type,
        data=payload["data"],
        timestamp=timestamp,
        origin=str(origin) if origin is not None else None,
        envelope=payload,
    )


def epoch_ms(value: Any) -> int | None:
    """An epoch-milliseconds number as an int; None for anything else (inf, NaN, text, or a
    number no clock gives, such as a 400-digit integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not 0 <= value <= MAX_EPOCH_MS:
        return None
    return int(value)


def _session_id(value: str | int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
