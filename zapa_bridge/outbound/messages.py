"""Outbound messages: the one place a send request is validated and shaped for zapw.

A request is checked here before anything is queued, so a bad one fails in the caller's hands
with `InvalidMessage` naming the field, and the worker only ever sees well-formed messages.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlparse

from zapa_bridge.errors import InvalidMessage
from zapa_bridge.outbound.text_split import UncuttableText, split_text
from zapa_bridge.session_ids import session_id_problem

# The most characters one WhatsApp text (or caption) holds; a longer text goes in parts.
MAX_TEXT_CHARS = 4096
# How many parts a long text may become unless ZAPA_MAX_TEXT_PARTS says otherwise.
DEFAULT_MAX_TEXT_PARTS = 10
MAX_MEDIA_BYTES = 16 * 1024 * 1024
MAX_DOCUMENT_BYTES = 100 * 1024 * 1024
PHONE_MIN_DIGITS = 8
PHONE_MAX_DIGITS = 15
MAX_IDEMPOTENCY_KEY_CHARS = 200
# Epoch seconds before 2286: a larger `expires_at` is a mistake (milliseconds, most often).
MAX_EXPIRES_AT = 10**10


class MessageType(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    LOCATION = "location"
    CONTACT = "contact"


class Priority(enum.StrEnum):
    HIGH = "high"
    DEFAULT = "default"
    LOW = "low"


MEDIA_TYPES = frozenset({MessageType.IMAGE, MessageType.VIDEO, MessageType.AUDIO,
                         MessageType.DOCUMENT})

# Which content fields each type takes; anything else given is a caller's mistake.
CONTENT_FIELDS: dict[MessageType, frozenset[str]] = {
    MessageType.TEXT: frozenset({"text"}),
    MessageType.IMAGE: frozenset({"media_url", "media_base64", "caption"}),
    MessageType.VIDEO: frozenset({"media_url", "media_base64", "caption"}),
    MessageType.AUDIO: frozenset({"media_url", "media_base64", "caption"}),
    MessageType.DOCUMENT: frozenset({"media_url", "media_base64", "caption", "file_name"}),
    MessageType.LOCATION: frozenset({"latitude", "longitude", "name", "address"}),
    MessageType.CONTACT: frozenset({"contact_name", "contact_number"}),
}

ALL_CONTENT_FIELDS = frozenset().union(*CONTENT_FIELDS.values())

# Our snake_case fields and the exact names zapw expects in the send body.
BRIDGE_FIELD_NAMES = {
    "to": "to",
    "type": "type",
    "text": "text",
    "media_url": "mediaUrl",
    "media_base64": "mediaBase64",
    "caption": "caption",
    "file_name": "fileName",
    "latitude": "latitude",
    "longitude": "longitude",
    "name": "name",
    "address": "address",
    "contact_name": "contactName",
    "contact_number": "contactNumber",
}


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A validated message to send through one bridge session."""

    to: str
    type: MessageType = MessageType.TEXT
    text: str | None = None
    media_url: str | None = None
    media_base64: str | None = None
    caption: str | None = None
    file_name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    contact_name: str | None = None
    contact_number: str | None = None
    session: str | None = None
    from_number: str | None = None
    priority: Priority = Priority.DEFAULT
    idempotency_key: str | None = None
    expires_at: float | None = None

    def to_task_kwargs(self) -> dict[str, Any]:
        """The compact keyword arguments the Celery message carries (unset fields left out)."""
        # Every field is a plain value: reading them beats `asdict`'s deep copy (hot path).
        values = ((name, getattr(self, name)) for name in _FIELD_NAMES)
        return {key: (str(value) if isinstance(value, enum.Enum) else value)
                for key, value in values if value is not None}

    @property
    def parts(self) -> list[str] | None:
        """A text over MAX_TEXT_CHARS as the parts it is sent in, in order; None for a
        message sent whole. The split is a pure function of the text, so every attempt
        (on any worker) finds the same parts."""
        if self.type is not MessageType.TEXT or self.text is None \
                or len(self.text) <= MAX_TEXT_CHARS:
            return None
        return list(_parts_of(self.text))

    def bridge_body(self) -> dict[str, Any]:
        """The JSON body of `POST /sessions/{id}/messages`, in zapw's field names."""
        values = self.to_task_kwargs()
        return {bridge: values[ours] for ours, bridge in BRIDGE_FIELD_NAMES.items()
                if ours in values}

    def bridge_payload(self) -> bytes:
        """`bridge_body()` as the bytes the bridge client posts (see `encode_body`)."""
        return encode_body(self.bridge_body())

    @property
    def conversation(self) -> str:
        """Its conversation: sender (session, or `+number`) and recipient. Messages of one
        conversation are sent in the order they were enqueued."""
        sender = self.session if self.session else f"+{self.from_number}"
        return f"{sender}>{self.to}"

    def log_fields(self) -> dict[str, str]:
        """What may be logged about this message: no content, the number masked."""
        from zapa_bridge.redaction import mask_phone

        described = {"to": mask_phone(self.to), "type": str(self.type),
                     "priority": str(self.priority)}
        if self.session:
            described["session"] = self.session
        if self.from_number:
            described["from_number"] = mask_phone(self.from_number)
        return described


_FIELD_NAMES = tuple(field.name for field in fields(OutboundMessage))
_OUR_FIELD_NAMES = {bridge: ours for ours, bridge in BRIDGE_FIELD_NAMES.items()}


def encode_body(body: dict[str, Any]) -> bytes:
    """A JSON request body for zapw, encoded the one way the bridge client sends it, so a
    size measured before queueing is the size zapw receives. ASCII with `\\u` escapes and
    default separators: the bytes `requests`' `json=` produced."""
    return json.dumps(body, allow_nan=False).encode("ascii")


# `ttl` is turned into `expires_at` when the message is built.
FIELD_NAMES = frozenset(f.name for f in fields(OutboundMessage)) | {"ttl"}
# The settings `build_message` takes beside the fields: a request naming one is refused,
# never taken as the setting.
SETTING_NAMES = frozenset({"default_session", "max_body_bytes", "max_text_parts"})


def check_field_names(names: Iterable[str]) -> None:
    """Refuse a name that is not a field of a send request (`InvalidMessage` naming it).

    An edge holding a request body calls this before passing the body on as keyword
    arguments, where a field named like a parameter would be a `TypeError` instead."""
    unknown = sorted(set(names) - FIELD_NAMES, key=str)
    if not unknown:
        return
    name = str(unknown[0])
    if name in SETTING_NAMES:
        raise InvalidMessage(name, "is a setting of zapa-bridge, not a field of a message")
    raise InvalidMessage(name, "unknown field")


def build_message(request: Mapping[str, Any] | None = None, /, *,
                  default_session: str | None = None, max_body_bytes: int | None = None,
                  max_text_parts: int = 1, **given: Any) -> OutboundMessage:
    """Validate a send request and return the message, or raise `InvalidMessage`.

    The request's fields come as the mapping `request`, or as keyword arguments from
    trusted code. Pass untrusted fields (a body, a task's kwargs) as the mapping: one
    named like a setting below is then refused, where `**fields` would raise `TypeError`.
    `default_session` is used when the request names neither `session` nor `from_number`.
    `max_body_bytes` (ZAPW_MAX_BODY_BYTES) refuses a message whose zapw body would be larger,
    since zapw could never accept it; None leaves the size unchecked. `max_text_parts`
    (ZAPA_MAX_TEXT_PARTS): a text over MAX_TEXT_CHARS is split in up to that many parts,
    each sent as a message of its own; 1 refuses it.
    """
    if request is not None:
        twice = sorted(set(request) & set(given), key=str)
        if twice:
            raise InvalidMessage(str(twice[0]), "given twice")
        given = {**request, **given}
    check_field_names(given)
    values = {key: value for key, value in given.items() if value is not None}

    to = _phone(values.get("to"), "to")
    kind = _choice(values.get("type", MessageType.TEXT), MessageType, "type")
    priority = _choice(values.get("priority", Priority.DEFAULT), Priority, "priority")

    allowed = CONTENT_FIELDS[kind]
    for key in sorted(ALL_CONTENT_FIELDS - allowed):
        if key in values:
            raise InvalidMessage(key, f"not used by {kind} messages")

    content: dict[str, Any] = {}
    if kind is MessageType.TEXT:
        content["text"] = _long_text(values.get("text"), max_text_parts)
    elif kind in MEDIA_TYPES:
        content.update(_media(values, kind))
    elif kind is MessageType.LOCATION:
        content["latitude"] = _coordinate(values.get("latitude"), "latitude", 90)
        content["longitude"] = _coordinate(values.get("longitude"), "longitude", 180)
        content["name"] = _text(values.get("name"), "name", required=False)
        content["address"] = _text(values.get("address"), "address", required=False)
    else:
        content["contact_name"] = _text(values.get("contact_name"), "contact_name", required=True)
        content["contact_number"] = _phone(
            _strip_plus(values.get("contact_number")), "contact_number"
        )

    session, from_number = _sender(values, default_session)
    message = OutboundMessage(to=to, type=kind, priority=priority, session=session,
                              from_number=from_number, idempotency_key=_idempotency_key(values),
                              expires_at=_expiry(values), **content)
    if max_body_bytes is not None:
        for whole_or_part in _sent_as(message):
            _check_body_size(whole_or_part, max_body_bytes)
    return message


@functools.lru_cache(maxsize=32)
def _parts_of(text: str) -> tuple[str, ...]:
    """`split_text` at WhatsApp's limit, kept for the few texts being sent: validation, the
    body check and the attempt each ask, and an attempt is made for every part."""
    return tuple(split_text(text, MAX_TEXT_CHARS))


def _sent_as(message: OutboundMessage) -> list[OutboundMessage]:
    """The messages zapw receives for `message`: itself, or each of its parts."""
    parts = message.parts
    if parts is None:
        return [message]
    return [replace(message, text=part) for part in parts]


def _long_text(value: Any, max_parts: int) -> str:
    """A message's `text`: over MAX_TEXT_CHARS, it must split into at most `max_parts`."""
    if not isinstance(value, str) or len(value) <= MAX_TEXT_CHARS or max_parts <= 1:
        text = _text(value, "text", required=True)
        assert text is not None
        return text
    if not value.strip():
        raise InvalidMessage("text", "must not be empty")
    # Counting parts is bounded work: a text longer than every part full is refused first.
    if len(value) > MAX_TEXT_CHARS * max_parts:
        raise InvalidMessage("text", f"must be at most {MAX_TEXT_CHARS * max_parts} "
                                     f"characters (ZAPA_MAX_TEXT_PARTS ({max_parts}) parts of "
                                     f"{MAX_TEXT_CHARS}), not {len(value)}")
    try:
        count = len(_parts_of(value))
    except UncuttableText as exc:
        raise InvalidMessage("text", str(exc)) from None
    if count > max_parts:
        raise InvalidMessage("text", f"would be sent in {count} parts, over "
                                     f"ZAPA_MAX_TEXT_PARTS ({max_parts})")
    return value


def _check_body_size(message: OutboundMessage, limit: int) -> None:
    # Encoding is skipped (enqueue is a hot path) where a bound shows the body small enough:
    # a character takes at most 12 bytes of JSON (an astral one, as a `\u` surrogate pair),
    # and everything else in a send body (names, quotes, numbers) stays under 512.
    chars = sum(len(value) for name in BRIDGE_FIELD_NAMES
                if isinstance(value := getattr(message, name), str))
    if 512 + 12 * chars <= limit:
        return
    body = message.bridge_body()
    size = len(encode_body(body))
    if size <= limit:
        return
    over = f"the zapw request body would be {size} bytes, {size - limit} over " \
           f"ZAPW_MAX_BODY_BYTES ({limit})"
    if message.media_base64 is not None:
        raise InvalidMessage("media_base64", f"{over}: send large media by media_url")
    largest = max(body, key=lambda name: len(json.dumps(body[name])))
    field = _OUR_FIELD_NAMES[largest]
    raise InvalidMessage(field, f"{over}; {field} is its largest field")


def _idempotency_key(values: dict[str, Any]) -> str | None:
    key = values.get("idempotency_key")
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidMessage("idempotency_key", f"must be a non-empty string of at most "
                                                f"{MAX_IDEMPOTENCY_KEY_CHARS} characters")
    return key


def _expiry(values: dict[str, Any]) -> float | None:
    """`expires_at` (epoch seconds) or `ttl` (seconds from now): when a reply is too late."""
    if "ttl" in values and "expires_at" in values:
        raise InvalidMessage("ttl", "give either ttl or expires_at, not both")
    if "ttl" in values:
        ttl = _number(values["ttl"])
        if ttl is None or not 0 < ttl < 10**9:
            raise InvalidMessage("ttl", "must be a positive number of seconds, under 10**9")
        return time.time() + ttl
    if "expires_at" not in values:
        return None
    expires_at = _number(values["expires_at"])
    if expires_at is None or not 0 < expires_at < MAX_EXPIRES_AT:
        raise InvalidMessage("expires_at", f"must be a time in epoch seconds (positive, under "
                                           f"{MAX_EXPIRES_AT})")
    return expires_at


def _number(value: Any) -> float | None:
    """A JSON number as a finite float, or None: not a number (a bool is not one), not
    finite, or an integer too large for any float (`float()` raises `OverflowError`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _sender(values: dict[str, Any], default_session: str | None) -> tuple[str | None, str | None]:
    if "session" in values and "from_number" in values:
        raise InvalidMessage("from_number", "give either session or from_number, not both")
    if "from_number" in values:
        return None, _phone(values["from_number"], "from_number")
    session = values.get("session", default_session)
    if session is None:
        raise InvalidMessage("session", "no session or from_number given and "
                                        "ZAPA_DEFAULT_SESSION is not set")
    return _session_id(session), None


def _session_id(value: Any) -> str:
    problem = session_id_problem(value)
    if problem is not None:
        raise InvalidMessage("session", problem)
    return str(value)


def _phone(value: Any, field: str) -> str:
    if value is None:
        raise InvalidMessage(field, "is required")
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise InvalidMessage(field, "must be digits only, in international form without '+'")
    if not PHONE_MIN_DIGITS <= len(value) <= PHONE_MAX_DIGITS:
        raise InvalidMessage(
            field, f"must have {PHONE_MIN_DIGITS} to {PHONE_MAX_DIGITS} digits, not {len(value)}"
        )
    return value


def _strip_plus(value: Any) -> Any:
    # A contact card number is often written "+55 11 ..."; zapw puts it in a vCard as given.
    if isinstance(value, str):
        return value.replace(" ", "").removeprefix("+")
    return value


def _choice(value: Any, kind: type[enum.StrEnum], field: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(member.value for member in kind)
        raise InvalidMessage(field, f"must be one of {names}") from None


def _text(value: Any, field: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise InvalidMessage(field, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidMessage(field, "must be a string")
    if required and not value.strip():
        raise InvalidMessage(field, "must not be empty")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidMessage(field, f"must be at most {MAX_TEXT_CHARS} characters, "
                                    f"not {len(value)}")
    return value


def _media(values: dict[str, Any], kind: MessageType) -> dict[str, Any]:
    url, data = values.get("media_url"), values.get("media_base64")
    if url is None and data is None:
        raise InvalidMessage("media_url", f"{kind} messages need media_url or media_base64")
    if url is not None and data is not None:
        raise InvalidMessage("media_base64", "give media_url or media_base64, not both")
    content: dict[str, Any] = {"caption": _text(values.get("caption"), "caption", required=False)}
    if url is not None:
        if not _is_web_url(url):
            raise InvalidMessage("media_url", "must be an http or https URL")
        content["media_url"] = url
    else:
        content["media_base64"] = _base64(data, kind)
    if kind is MessageType.DOCUMENT:
        content["file_name"] = _text(values.get("file_name"), "file_name", required=True)
    return content


def _is_web_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = urlparse(value)
    except ValueError:  # "http://[": an IPv6 host never closed
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _base64(value: Any, kind: MessageType) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidMessage("media_base64", "must be a non-empty base64 string")
    if value.startswith("data:"):
        raise InvalidMessage("media_base64", "must be raw base64, without a 'data:' prefix")
    limit = MAX_DOCUMENT_BYTES if kind is MessageType.DOCUMENT else MAX_MEDIA_BYTES
    if len(value) * 3 // 4 > limit:
        raise InvalidMessage("media_base64", f"decodes to more than {limit // 2**20} MB")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMessage("media_base64", "is not valid base64") from None
    return value


def _coordinate(value: Any, field: str, limit: int) -> float:
    if value is None:
        raise InvalidMessage(field, "is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(field, "must be a number")
    number = _number(value)
    if number is None or not -limit <= number <= limit:
        raise InvalidMessage(field, f"must be between -{limit} and {limit}")
    return number
