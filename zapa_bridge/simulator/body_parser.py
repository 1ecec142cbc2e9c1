"""zapw's body parsing, as Express' `express.json()` and `express.urlencoded()` do it.

Both parsers run before the API-key check, on every route, and refuse a body over
body-parser's default limit of "100kb" (102,400 bytes; exactly that passes) or one that is
not strict JSON; zapw's error handler turns either refusal into its bare 500. Other content
types are not read at all.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request

BODY_LIMIT = 102_400  # bytes: body-parser's "100kb" is 100 * 1024
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
DRAIN_CHUNK = 64 * 1024


class BodyRefused(Exception):
    """The body-parser refused the body (too large or malformed): a 500 from zapw."""


def parse_body(request: Request) -> Any:
    """The parsed body (an object or array for JSON, a dict for a form), else {}."""
    if request.mimetype not in (JSON_TYPE, FORM_TYPE):
        return {}
    if (request.content_length or 0) > BODY_LIMIT:
        _drain(request)  # so the client can finish writing and read the answer
        raise BodyRefused
    raw = request.get_data()  # a chunked body has no length to check first
    if len(raw) > BODY_LIMIT:
        raise BodyRefused
    if request.mimetype == FORM_TYPE:
        return request.form.to_dict()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BodyRefused from None
    if not isinstance(body, dict | list):  # strict mode: only an object or an array
        raise BodyRefused
    return body


def _drain(request: Request) -> None:
    """Read the body and throw it away, as Node dumps an unread request."""
    while request.stream.read(DRAIN_CHUNK):
        pass
