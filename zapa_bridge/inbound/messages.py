"""Inbound WhatsApp messages: zapw's `message.received` made plain for the AI side.

Phone numbers become digits (JIDs and `:device` suffixes stripped), groups are marked with
their group, media is flagged, location and contact are kept, and a message zapw could not
type (a sticker, a reaction...) is kept as `unsupported` rather than dropped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from zapa_bridge.inbound.events import WebhookEvent, epoch_ms
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.publisher import PreparedMessage
from zapa_bridge.store.replies import text_hash, texts

UNSUPPORTED = "unsupported"
RECENT_LIMIT = 500


def jid_to_id(jid: Any) -> str:
    """`5511988887777:12@s.whatsapp.net` -> `5511988887777`; `1203...@g.us` -> `1203...`."""
    if jid is None:
        return ""
    user = str(jid).split("@", 1)[0]
    return user.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """What Zapa's AI processing receives, as the `message` keyword of its task."""

    id: str
    session: str
    account: str | None
    message_id: str
    sender: str
    recipient: str
    timestamp: int | None
    type: str
    is_group: bool
    group_id: str | None
    text: str | None
    caption: str | None
    has_media: bool
    file_name: str | None
    location: dict[str, Any] | None
    contact: dict[str, Any] | None

    @property
    def supported(self) -> bool:
        return self.type != UNSUPPORTED

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize(event: WebhookEvent) -> InboundMessage:
    data = event.data
    message_id = str(data.get("messageId") or "")
    is_group = bool(data.get("isGroup"))
    timestamp = data.get("timestamp")
    return InboundMessage(
        id=keys.inbound_id(event.session, message_id),
        session=event.session,
        account=event.origin,
        message_id=message_id,
        sender=jid_to_id(data.get("from")),
        recipient=jid_to_id(data.get("to")),
        timestamp=epoch_ms(timestamp) or event.timestamp,
        type=str(data.get("type") or UNSUPPORTED),
        is_group=is_group,
        group_id=jid_to_id(data.get("groupId")) if is_group and data.get("groupId") else None,
        text=_optional_str(data.get("text")),
        caption=_optional_str(data.get("caption")),
        has_media=bool(data.get("hasMedia")),
        file_name=_optional_str(data.get("fileName")),
        location=data.get("location") if isinstance(data.get("location"), dict) else None,
        contact=data.get("contact") if isinstance(data.get("contact"), dict) else None,
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class InboundTask:
    """The task an inbound message is handed to (by name), made ready for its queue."""

    task: str
    message: PreparedMessage


# The function that records an inbound message and hands it on, for every script that does.
LUA_RECORD = scripts.read(__package__, "messages.record.lua")
_RECEIVE = LUA_RECORD + scripts.read(__package__, "messages.receive.lua")


class InboundLog:
    """Every inbound message received, kept for the retention period, newest listed first."""

    def __init__(self, client: redis.Redis, *, retention: int) -> None:
        self.redis = client
        self.retention = retention
        self._receive = client.register_script(_RECEIVE)

    @staticmethod
    def key(inbound_id: str) -> str:
        return keys.inbound(inbound_id)

    def receive(self, message: InboundMessage, hand_on: InboundTask | None) -> bool:
        """Keep the message (once) and, the first time only, put `hand_on` on its queue.

        One atomic step: a handler that dies halfway leaves nothing half done, and a message
        handled again (a redelivered event) is never handed on twice. Returns False when it
        had already been handed on.
        """
        call_keys, args = self.call_parts(message, hand_on)
        return bool(self._receive(keys=call_keys, args=args))

    def call_parts(self, message: InboundMessage,
                   hand_on: InboundTask | None) -> tuple[list[str], list[str]]:
        """The KEYS and ARGV of `record_inbound` (messages.receive.lua's legend), for this
        script and the webhook intake's, which passes them on."""
        key = self.key(message.id)
        queue, payload, task = ((hand_on.message.queue, hand_on.message.payload, hand_on.task)
                                if hand_on else (key, "", ""))
        return ([key, keys.INBOUND_RECENT, queue],
                [json.dumps(message.as_dict()), repr(time.time()), message.type,
                 str(self.retention), message.id, str(RECENT_LIMIT), task, payload])

    def get(self, inbound_id: str) -> dict[str, Any] | None:
        raw = text_hash(self.redis.hgetall(self.key(inbound_id)))
        if "received" not in raw:  # absent, or being written right now
            return None
        return {"message": json.loads(raw["message"]), "received": float(raw["received"]),
                "routed_to": raw["routed_to"] or None}

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        ids = texts(self.redis.lrange(keys.INBOUND_RECENT, 0, limit - 1))
        found = (self.get(inbound_id) for inbound_id in ids)
        return [entry for entry in found if entry is not None]
