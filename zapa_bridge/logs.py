"""Log lines as `event=<name> key=value ...`: one line per event, easy to grep and to parse.

Callers pass only what may be logged: ids, sessions, statuses, masked numbers; never
message text, tokens or keys.
"""

from __future__ import annotations

import logging
import re

_BARE = re.compile(r"[\w.:@*/+-]+")
# Escaped in a quoted value: the quote, the backslash and every character that is not
# printable (controls, line separators, bidi overrides; letters of any script stay). A value
# from outside (a session id, an error text) then never ends the line, forges another with
# `\r` or U+2028, or steers a terminal with ESC.
_TO_ESCAPE = re.compile(r'["\\]|[^ -~]')
_NAMED_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def line(event: str, **fields: object) -> str:
    """`line("message.sent", message_id="m1", session="s1")` -> `event=message.sent ...`."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        parts.append(f"{key}={text}" if _BARE.fullmatch(text) else f'{key}="{_escape(text)}"')
    return " ".join(parts)


def _escape(text: str) -> str:
    return _TO_ESCAPE.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    if char.isprintable():  # a letter of any script: kept as it is
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


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
