"""Inbound WhatsApp messages as zapw reports them in `message.received` data.

An `Inbound` says what arrived; `received_data` shapes it the way zapw does: JIDs for the
sender and for our own account (with its device suffix), fields present only when known.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from typing import Any

from zapa_bridge.simulator.jsvalues import epoch_ms

SUPPORTED_TYPES = frozenset({"text", "image", "video", "audio", "document", "location",
                             "contact"})
MEDIA_TYPES = frozenset({"image", "video", "audio", "document"})
DEFAULT_SENDER = "5511988887777"


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message that arrives on a session.

    `type` outside SUPPORTED_TYPES (e.g. "sticker") or None yields data without `type`, as
    zapw does for kinds it does not know. In a group, `sender` is the participant.
    """

    type: str | None = "text"
    sender: str = DEFAULT_SENDER
    text: str | None = None
    caption: str | None = None
    file_name: str | None = None
    group: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    location_name: str | None = None
    address: str | None = None
    contact_name: str | None = None
    contact_number: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    has_media: bool | None = None  # default: true for image/video/audio/document

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Inbound:
        """Build from a control-API body (same field names); ValueError names a bad field."""
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown field")
        inbound = cls(**body)
        inbound.check()
        return inbound

    def check(self) -> None:
        for name in STRING_FIELDS:
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: must be a string")
        for name in ("latitude", "longitude", "timestamp"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, int | float)):
                raise ValueError(f"{name}: must be a number")
        if self.has_media is not None and not isinstance(self.has_media, bool):
            raise ValueError("has_media: must be true or false")
        if not self.sender:
            raise ValueError("sender: required (digits or a JID)")
        if self.type == "text" and not self.text:
            raise ValueError("text: required for a text message")
        if self.type == "location" and (self.latitude is None or self.longitude is None):
            raise ValueError("latitude: latitude and longitude are required for a location")
        if self.type == "contact" and not self.contact_name:
            raise ValueError("contact_name: required for a contact")


FIELDS = frozenset(field.name for field in dataclasses.fields(Inbound))
STRING_FIELDS = ("type", "sender", "text", "caption", "file_name", "group", "location_name",
                 "address", "contact_name", "contact_number", "message_id")


def new_message_id() -> str:
    """A WhatsApp Web style message id, as Baileys makes them."""
    return "3EB0" + uuid.uuid4().hex[:16].upper()


def user_jid(number: str) -> str:
    return number if "@" in number else "".join(filter(str.isdigit, number)) + "@s.whatsapp.net"


def group_jid(group: str) -> str:
    return group if "@" in group else "".join(filter(str.isdigit, group)) + "@g.us"


def received_data(inbound: Inbound, own_phone: str, device: int) -> dict[str, Any]:
    """The `data` of a `message.received` event for `inbound` on the account `own_phone`."""
    data: dict[str, Any] = {
        "from": user_jid(inbound.sender),
        "to": f"{own_phone}:{device}@s.whatsapp.net",
        "messageId": inbound.message_id or new_message_id(),
        "timestamp": inbound.timestamp if inbound.timestamp is not None else epoch_ms(time.time()),
        "isGroup": inbound.group is not None,
    }
    if inbound.group is not None:
        data["groupId"] = group_jid(inbound.group)
    if inbound.type in SUPPORTED_TYPES:
        data["type"] = inbound.type
    optional = {"text": inbound.text, "caption": inbound.caption}
    data.update({key: value for key, value in optional.items() if value is not None})
    has_media = inbound.has_media if inbound.has_media is not None \
        else inbound.type in MEDIA_TYPES
    if has_media:
        data["hasMedia"] = True
    if inbound.file_name is not None:
        data["fileName"] = inbound.file_name
    if inbound.type == "location":
        location = {"latitude": inbound.latitude, "longitude": inbound.longitude,
                    "name": inbound.location_name, "address": inbound.address}
        data["location"] = {key: value for key, value in location.items() if value is not None}
    if inbound.type == "contact":
        contact = {"name": inbound.contact_name, "number": inbound.contact_number}
        data["contact"] = {key: value for key, value in contact.items() if value is not None}
    return data
