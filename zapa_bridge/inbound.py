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

from zapa_bridge.status_store import PREFIX
from zapa_bridge.webhook_events import WebhookEvent, epoch_ms

UNSUPPORTED = "unsupported"
RECENT_KEY = f"{PREFIX}in:recent"
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
        id=f"{event.session}:{message_id}",
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


class InboundLog:
    """Every inbound message received, kept for the retention period, newest listed first."""

    def __init__(self, client: redis.Redis, *, retention: int) -> None:
        self.redis = client
        self.retention = retention

    @staticmethod
    def key(inbound_id: str) -> str:
        return f"{PREFIX}in:{inbound_id}"

    def record(self, message: InboundMessage) -> bool:
        """Keep the message (once: False when it was already recorded)."""
        key = self.key(message.id)
        if not self.redis.hsetnx(key, "message", json.dumps(message.as_dict())):
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"received": time.time(), "routed_to": "",
                                "type": message.type})
        pipe.expire(key, self.retention)
        pipe.lpush(RECENT_KEY, message.id)
        pipe.ltrim(RECENT_KEY, 0, RECENT_LIMIT - 1)
        pipe.execute()
        return True

    def mark_routed(self, inbound_id: str) -> bool:
        """True for the first caller only: that one hands the message on."""
        return bool(self.redis.set(f"{self.key(inbound_id)}:routed", 1, nx=True,
                                   ex=self.retention))

    def unmark_routed(self, inbound_id: str) -> None:
        self.redis.delete(f"{self.key(inbound_id)}:routed")

    def set_routed_to(self, inbound_id: str, routed_to: str | None) -> None:
        self.redis.hset(self.key(inbound_id), "routed_to", routed_to or "")

    def get(self, inbound_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(self.key(inbound_id))
        if "received" not in raw:  # absent, or being written right now
            return None
        return {"message": json.loads(raw["message"]), "received": float(raw["received"]),
                "routed_to": raw["routed_to"] or None}

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        ids = self.redis.lrange(RECENT_KEY, 0, limit - 1)
        found = (self.get(inbound_id) for inbound_id in ids)
        return [entry for entry in found if entry is not None]
