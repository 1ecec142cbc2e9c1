"""The per-session send limit, shared by every worker on every machine.

Each session has a sliding log in Redis: a sorted set of its recent sends scored by time.
A send may go when fewer than `limit` sends lie in the last `window` seconds; otherwise the
answer is how long until the oldest one leaves the window. A slot is taken before the bridge
is called and moved to when the bridge answered, so the bridge itself never sees more than
`limit` sends in any window, however long a call takes. The clock is Redis's own (one clock
for all machines). On a send's common path both steps ride on other calls: the delivery's
claim takes the slot (`Terms`), and the change of status that records the bridge's answer
settles it (`Slot`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import redis

from zapa_bridge.outbound.rate_spec import RateLimit, rate_for
from zapa_bridge.store import keys, scripts

# rate_take(log, limit, window, slot, keep_ms): the sliding log's one step, for every script
# that takes a slot.
LUA_RATE_TAKE = scripts.read(__package__, "rate_limit.take.lua")

_ACQUIRE = LUA_RATE_TAKE + scripts.read(__package__, "rate_limit.acquire.lua")

_SETTLE = scripts.read(__package__, "rate_limit.settle.lua")

# How long a session's log outlives its window (ms): a log idle that long is dropped.
_KEEP_MS = 60_000


class Slot(NamedTuple):
    """A send slot in a session's rate log (`key`), by its name."""

    key: str
    name: str


@dataclass(frozen=True, slots=True)
class Terms:
    """What a script needs to take a slot of `session` itself: its log, and its limit (None:
    the session sends freely). `anywhere` says whether any session has a limit at all: if
    none has, any session may send without a slot."""

    anywhere: bool
    session: str
    key: str | None
    limit: RateLimit | None

    @property
    def keep_ms(self) -> int:
        return _keep_ms(self.limit) if self.limit else 0


def _keep_ms(limit: RateLimit) -> int:
    return math.ceil(limit.window * 1000) + _KEEP_MS


class SessionRateLimiter:
    """Hands out send slots per session; `acquire` answers 0 (go) or seconds to wait."""

    def __init__(self, client: redis.Redis, default: RateLimit | None,
                 overrides: Mapping[str, RateLimit | None]) -> None:
        self.redis = client
        self.default = default
        self.overrides = dict(overrides)
        self.anywhere = default is not None or any(
            limit is not None for limit in self.overrides.values())
        self._acquire = client.register_script(_ACQUIRE)
        self._settle = client.register_script(_SETTLE)

    @staticmethod
    def key(session: str) -> str:
        return keys.rate(session)

    def limit_of(self, session: str) -> RateLimit | None:
        return rate_for(session, self.default, self.overrides)

    def terms(self, session: str | None) -> Terms:
        """The terms for a script to take a slot of `session` (None: unknown, so no slot can
        be taken but where no session is limited)."""
        if not self.anywhere or session is None:
            return Terms(self.anywhere, "", None, None)
        return Terms(True, session, self.key(session), self.limit_of(session))

    def acquire(self, session: str, slot: str) -> float:
        """Take a send slot named `slot` for `session`: 0.0 when taken, else the seconds
        until one may free up."""
        limit = self.limit_of(session)
        if limit is None:
            return 0.0
        wait = self._acquire(keys=[self.key(session)],
                             args=[limit.limit, repr(limit.window), slot, _keep_ms(limit)])
        return float(wait)

    def slot(self, session: str, name: str) -> Slot | None:
        """The slot `name` of `session`, for the change of status that records the bridge's
        answer to settle; None when the session has no limit."""
        return Slot(self.key(session), name) if self.limit_of(session) is not None else None

    def settle(self, session: str, slot: str) -> None:
        """The bridge answered: count the slot from now (when no change of status settles
        it)."""
        if self.limit_of(session) is not None:
            self._settle(keys=[self.key(session)], args=[slot])

    def give_back(self, session: str, slot: str) -> None:
        """The slot was not used (nothing was sent)."""
        if self.limit_of(session) is not None:
            self.redis.zrem(self.key(session), slot)
