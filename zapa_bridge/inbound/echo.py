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
    burst = message.get("burst") or []
    if len(burst) > 1:
        # One turn of several messages (ZAPA_INBOUND_COALESCE): each echoed on its own line.
        text = "\n".join([f"echo: {len(burst)} messages as one turn",
                           *(_part(part) for part in burst)])
    elif kind == "text":
        text = f"echo: {message.get('text') or ''}"
    elif kind == UNSUPPORTED:
        text = "Sorry, I cannot read this kind of message yet."
    else:
        text = f"echo: got your {kind}"
    # Keyed on the inbound message: one reply, however often this handler runs for it.
    return {"to": message["sender"], "text": text[:4096], "session": message["session"],
            "idempotency_key": f"reply:{message['id']}"}


def _part(message: dict[str, Any]) -> str:
    """One message of a burst, as its echo shows it: its text, a media's caption, or its
    kind in brackets."""
    for field in ("text", "caption"):
        if message.get(field):
            return str(message[field])
    return f"[{message.get('type')}]"
