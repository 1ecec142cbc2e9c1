"""zapw's webhook envelope: parsed, checked, and keyed for deduplication."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from zapa_bridge.errors import InvalidEvent
from zapa_bridge.session_ids import session_id_problem

MESSAGE_RECEIVED = "message.received"
STATUS_EVENTS = frozenset({"message.sent", "message.delivered", "message.read",
                           "message.failed"})
SESSION_EVENTS = frozenset({"session.connected", "session.disconnected", "connection.status"})
KNOWN_EVENTS = frozenset({MESSAGE_RECEIVED}) | STATUS_EVENTS | SESSION_EVENTS
# The label every event type we do not handle is counted under: types are chosen by the
# poster, so counting each under its own name would grow the stats hash and /metrics
# without bound.
OTHER_EVENTS = "other"
# Ids end up in Redis keys kept for days (the inbound log, the bridge-id index), so each is
# capped far above what zapw and WhatsApp produce: WhatsApp message ids are 20-40
# characters. Session ids follow `session_ids` (at most 100 characters, no `..`).
MAX_MESSAGE_ID = 256
# How deep a body may nest (the top-level object is level 1). zapw's deepest event,
# `session.disconnected`'s reason, is a few levels; Python's decoders give up near 1000,
# and a worker's, which wraps the event in Celery's message, sooner than the web edge's.
MAX_NESTING = 64
# A string JSON decoding can give that is not Unicode text: a lone surrogate (`"\ud800"`).
# Redis, the logs and Celery cannot encode it as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")
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

    @property
    def stats_type(self) -> str:
        """The event type as counted: its own name when known, `OTHER_EVENTS` when not."""
        return self.event_type if self.known else OTHER_EVENTS

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
    bad_text = not_text_at(payload)
    if bad_text is not None:
        raise InvalidEvent(bad_text, "is not valid UTF-8 (a lone surrogate)")
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
    session_id = _session_id(session)
    problem = session_id_problem(session_id)
    if problem is not None:
        raise InvalidEvent("sessionId", problem)
    message_id = payload["data"].get("messageId")
    if (isinstance(message_id, str | int | float)
            and len(str(message_id)) > MAX_MESSAGE_ID):
        raise InvalidEvent("data.messageId", f"must be at most {MAX_MESSAGE_ID} characters")
    timestamp = epoch_ms(payload.get("timestamp"))
    if payload.get("timestamp") is not None and timestamp is None:
        raise InvalidEvent("timestamp", "must be epoch milliseconds")
    origin = payload.get("origin")
    return WebhookEvent(
        session=session_id,
        event_type=event_type,
        data=payload["data"],
        timestamp=timestamp,
        origin=str(origin) if origin is not None else None,
        envelope=payload,
    )


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether decoded JSON nests more than `limit` levels; measured without recursion, so a
    body nested a thousand levels deep costs no stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def not_text_at(value: Any) -> str | None:
    """The path (`data.type`, `data.items[2]`) of the first string or key of decoded JSON
    that is not valid UTF-8, or None. Call it on a body no deeper than `MAX_NESTING`."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return path or "body"
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                where = f"{path}.{_shown(key)}" if path else _shown(key)
                if not key.isascii() and _SURROGATE.search(key):
                    return where
                children.append((child, where))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]")
                         for index, child in reversed(list(enumerate(item))))
    return None


def _shown(key: str) -> str:
    """A key as a path names it: at most 64 characters, a lone surrogate as `?`."""
    return key[:64].encode("utf-8", "replace").decode()


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
