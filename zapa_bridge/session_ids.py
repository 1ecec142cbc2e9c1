"""What a session id may be, wherever one enters: ZAPA_SESSIONS, a webhook's `sessionId`,
an admin API path or body, a send, the CLI.

A session id becomes a path segment of zapw's API (`/sessions/{id}/messages`) and a part of
Redis keys kept for days. `.` and `..` are refused because `requests` normalises the URL
they are in (`/sessions/../messages` is `/messages`): percent-encoding cannot save them,
since `%2E%2E` is normalised too by many servers. `/` would start another segment. The
rest is percent-encoded by the bridge client (`path_segment`).
"""

from __future__ import annotations

from urllib.parse import quote

# zapw's own session ids are UUIDs (36 characters); a name an operator picks is shorter.
MAX_SESSION_ID_CHARS = 100
DOT_SEGMENTS = frozenset({".", ".."})


def session_id_problem(value: object) -> str | None:
    """Why `value` cannot be a session id (a phrase to follow the field's name), or None."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if len(value) > MAX_SESSION_ID_CHARS:
        return f"must be at most {MAX_SESSION_ID_CHARS} characters"
    if value in DOT_SEGMENTS:
        return "must not be '.' or '..' (a URL path would drop or climb it)"
    if "/" in value or "\\" in value:
        return "must not contain '/' or '\\'"
    if not value.isprintable() or any(0xD800 <= ord(char) <= 0xDFFF for char in value):
        return "must be printable text"
    return None


def path_segment(session_id: str) -> str:
    """`session_id` as one percent-encoded path segment of a URL; ValueError for the ids
    no encoding makes a segment of its own (empty, `.`, `..`)."""
    if not session_id or session_id in DOT_SEGMENTS:
        raise ValueError(f"session id {session_id!r} cannot be a URL path segment")
    return quote(session_id, safe="")
