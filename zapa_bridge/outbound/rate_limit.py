"""The per-session send limit, shared by every worker on every machine.

Each session has a sliding log in Redis: a sorted set of its recent sends scored by time.
A send may go when fewer than `limit` sends lie in the last `window` seconds; otherwise the
answer is how long until the oldest one leaves the window. A slot is taken before the bridge
is called and moved to when the bridge answered, so the bridge itself never sees more than
`limit` sends in any window, however long a call takes. The clock is Redis's own (one clock
for all machines).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import redis

from zapa_bridge.outbound.rate_spec import RateLimit, rate_for
from zapa_bridge.store import keys, scripts

_ACQUIRE = scripts.read(__package__, "rate_limit.acquire.lua")

_SETTLE = scripts.read(__package__, "rate_limit.settle.lua")


class SessionRateLimiter:
    """Hands out send slots per session; `acquire` answers 0 (go) or seconds to wait."""

    def __init__(self, client: redis.Redis, default: RateLimit | None,
                 overrides: Mapping[str, RateLimit | None]) -> None:
        self.redis = client
        self.default = default
        self.overrides = dict(overrides)
        self._acquire = client.register_script(_ACQUIRE)
        self._settle = client.register_script(_SETTLE)

    @staticmethod
    def key(session: str) -> str:
        return keys.rate(session)

    def limit_of(self, session: str) -> RateLimit | None:
        return rate_for(session, self.default, self.overrides)

    def acquire(self, session: str, slot: str) -> float:
        """Take a send slot named `slot` for `session`: 0.0 when taken, else the seconds
        until one may free up."""
        limit = self.limit_of(session)
        if limit is None:
            return 0.0
        keep_ms = math.ceil(limit.window * 1000) + 60_000
        wait = self._acquire(keys=[self.key(session)],
                             args=[limit.limit, repr(limit.window), slot, keep_ms])
        return float(wait)

    def settle(self, session: str, slot: str) -> None:
        """The bridge answered: count the slot from now."""
        if self.limit_of(session) is not None:
            self._settle(keys=[self.key(session)], args=[slot])

    def give_back(self, session: str, slot: str) -> None:
        """The slot was not used (nothing was sent)."""
        if self.limit_of(session) is not None:
            self.redis.zrem(self.key(session), slot)
