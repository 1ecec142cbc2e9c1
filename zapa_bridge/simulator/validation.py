"""zapw's check of a send body, done before it looks the session up, with its exact texts.

The checks run in zapw's order (to, type, then the type's own fields). Every text contains
"required", which is how zapw's controller turns it into a 400; an unknown `type` throws a
text without it and so ends in the catch-all 500 "Failed to send message".
"""

from __future__ import annotations

from typing import Any

from zapa_bridge.simulator.errors import ZapwError
from zapa_bridge.simulator.jsvalues import js_truthy

MEDIA_TYPES = frozenset({"image", "video", "audio", "document"})
SEND_FAILED = "Failed to send message"


def validate_send(body: Any) -> None:
    """Raise the ZapwError zapw answers for this body, or return if it would send it."""
    fields = body if isinstance(body, dict) else {}

    def given(name: str) -> bool:
        return js_truthy(fields.get(name))

    if not given("to"):
        raise ZapwError(400, 'Recipient "to" is required')
    if not given("type"):  # absent, "", null, 0 or false
        raise ZapwError(400, "Message type is required")
    kind = fields["type"]
    if not isinstance(kind, str):  # `switch` compares with ===: an array or object matches none
        raise ZapwError(500, SEND_FAILED)
    if kind == "text":
        if not given("text"):
            raise ZapwError(400, "Text is required for text messages")
    elif kind in MEDIA_TYPES:
        if not given("mediaUrl") and not given("mediaBase64"):
            raise ZapwError(400, "Media URL or base64 is required")
        if kind == "document" and not given("fileName"):
            raise ZapwError(400, "File name is required for documents")
    elif kind == "location":
        # zapw tests `=== undefined`: 0 and even null pass, only an absent key fails.
        if "latitude" not in fields or "longitude" not in fields:
            raise ZapwError(400, "Latitude and longitude are required for location messages")
    elif kind == "contact":
        if not given("contactName") or not given("contactNumber"):
            raise ZapwError(400, "Contact name and number are required for contact messages")
    else:
        raise ZapwError(500, SEND_FAILED)
