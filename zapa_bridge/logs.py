"""Log lines as `event=<name> key=value ...`: one line per event, easy to grep and to parse.

Callers pass only what may be logged: ids, sessions, statuses, masked numbers; never
message text, tokens or keys.
"""

from __future__ import annotations

import re

_BARE = re.compile(r"^[\w.:@*/+-]+$")


def line(event: str, **fields: object) -> str:
    """`line("message.sent", message_id="m1", session="s1")` -> `event=message.sent ...`."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        parts.append(f"{key}={text}" if _BARE.match(text) else f'{key}="{_escape(text)}"')
    return " ".join(parts)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
