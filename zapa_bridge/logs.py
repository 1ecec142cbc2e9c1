"""Log lines as `event=<name> key=value ...`: one line per event, easy to grep and to parse.

Callers pass only what may be logged: ids, sessions, statuses, masked numbers; never
message text, tokens or keys.
"""

from __future__ import annotations

import logging
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


def configure(level: str) -> None:
    """Send our event lines to stderr in a process that set up no logging of its own (the
    web process under gunicorn; Celery configures its workers itself)."""
    logger = logging.getLogger("zapa")
    logger.setLevel(level)
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
