"""What may reach a log line: phone numbers masked, never message content or secrets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_JID_SUFFIX = re.compile(r"[:@].*$")


def mask_phone(number: str | None) -> str:
    """Keep the country prefix and the last two digits: enough to tell numbers apart."""
    if not number:
        return "-"
    digits = _JID_SUFFIX.sub("", str(number))
    if len(digits) <= 4:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 5)}{digits[-2:]}"


def redact_url(url: str) -> str:
    """A URL with any password replaced, e.g. `redis://:***@host:6379/0`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
