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
from zapa_bridge.outbound.status_store import PREFIX

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(math.max(0.001, tonumber(oldest[2]) + window - now))
"""

# The slot now counts from when the bridge answered (if it is still in the log).
_SETTLE = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) + tonumber(t[2]) / 1e6, ARGV[1])
"""


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
        return f"{PREFIX}rate:{session}"

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
