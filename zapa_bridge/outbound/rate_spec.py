"""Per-session send limits as operators write them: `5/5s` is at most 5 sends in any 5 s.

`ZAPA_RATE_LIMIT` is the default for every session and `ZAPA_SESSION_RATE_LIMITS` overrides
it per session (`A=5/1s,B=off`). zapw's advice is about 1 message/s with bursts of at most 5
in 5 s, hence the default `5/5s`. `ZAPA_RECIPIENT_RATE_LIMIT` is written the same way, and
`ZAPA_SESSION_WARMUP` is a list of daily limits (zapa_bridge.outbound.pacing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*$")
OFF = "off"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` sends in any window of `window` seconds."""

    limit: int
    window: float

    def __str__(self) -> str:
        return f"{self.limit}/{self.window:g}s"


def parse_rate(text: str) -> RateLimit | None:
    """`5/5s` -> RateLimit(5, 5.0); `off` -> None; ValueError says what is wrong."""
    if text.strip().lower() == OFF:
        return None
    match = _SPEC.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a rate: write <count>/<seconds>s (e.g. 5/5s) or off")
    limit, window = int(match.group(1)), float(match.group(2))
    if limit < 1 or window <= 0:
        raise ValueError(f"{text!r}: the count must be at least 1 and the window above 0 s")
    return RateLimit(limit, window)


def parse_session_rates(text: str) -> dict[str, RateLimit | None]:
    """`A=5/1s,B=off` -> {"A": RateLimit(5, 1.0), "B": None}."""
    rates: dict[str, RateLimit | None] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        session, sep, spec = item.partition("=")
        if not sep or not session.strip():
            raise ValueError(f"{item!r} is not <session>=<rate>")
        rates[session.strip()] = parse_rate(spec)
    return rates


def parse_warmup(text: str) -> tuple[int, ...]:
    """`50,100,200` -> (50, 100, 200): the daily limits of a number's first days."""
    limits = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if not (item.isascii() and item.isdigit()) or int(item) < 1:
            raise ValueError(f"{item!r} is not a whole number above 0: write the daily limits "
                             "of a number's first days, e.g. 50,100,200,500")
        limits.append(int(item))
    return tuple(limits)


def rate_for(session: str, default: RateLimit | None,
             overrides: Mapping[str, RateLimit | None]) -> RateLimit | None:
    return overrides.get(session, default)
