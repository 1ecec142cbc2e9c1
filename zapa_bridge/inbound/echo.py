"""The built-in inbound handler of the local stack: answer every message by echoing it.

It stands where Zapa's AI processing would, so the whole loop can be seen working.
"""

from __future__ import annotations

from typing import Any

from zapa_bridge.inbound.messages import UNSUPPORTED


def echo_reply(message: dict[str, Any]) -> dict[str, Any] | None:
    """The `send_message` arguments of the echo's reply, or None (groups get no reply:
    zapw cannot address them)."""
    if message.get("is_group") or not message.get("sender"):
        return None
    kind = message.get("type")
    if kind == "text":
        text = f"echo: {message.get('text') or ''}"
    elif kind == UNSUPPORTED:
        text = "Sorry, I cannot read this kind of message yet."
    else:
        text = f"echo: got your {kind}"
    # Keyed on the inbound message: one reply, however often this handler runs for it.
    return {"to": message["sender"], "text": text[:4096], "session": message["session"],
            "idempotency_key": f"reply:{message['id']}"}
