"""Human-like pacing of a session's sends, shared by every worker through Redis.

Two limits, both off by default, on top of the session's rate limit (rate_limit.py):

- `ZAPA_RECIPIENT_RATE_LIMIT` (`1/3s`): sends of one session to one recipient, a sliding
  log per (session, recipient) like the session's own;
- `ZAPA_SESSION_DAILY_LIMIT`, with `ZAPA_SESSION_WARMUP` (`50,100,200,500`): messages a
  session sends per UTC day; on a number's first days, the warm-up's entry for that day
  (day 0 being the day the registry first saw its session connected). Past the warm-up,
  the daily limit, or none when only the warm-up is set.

One script (`pacing.take.lua`) checks both and, when both allow, counts the message once
and marks its record `paced`: a retry, a crash's re-run, or the next part of a split
message is never counted again. What does not pass waits in the due set, never in a
worker: a recipient wait for when the recipient's window frees, a message over the daily
limit `held` (reason `daily limit`) until the next UTC midnight, released in the order it
was held. Every wait gets some jitter, so sends are not on a fixed beat.

The pacing clock is the worker's; with `ZAPA_ENV=test` only, a test can move it
(`PACING_TEST_CLOCK`, seconds added) to reach the next day without waiting for it.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from zapa_bridge.outbound.rate_limit import LUA_RATE_TAKE
from zapa_bridge.outbound.rate_spec import RateLimit, parse_rate, parse_warmup
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.replies import optional_text, text_set, texts

DAY = 86400
# Jitter of a paced wait: up to this share of it, and never more than JITTER_MOST seconds.
JITTER_SHARE = 0.15
JITTER_MOST = 2.0
# Between two messages of a session released at midnight, in the order they were held.
RELEASE_STEP = 0.01
# How long a recipient's log outlives its window (ms), as the session's rate log.
_KEEP_MS = 60_000

if TYPE_CHECKING:
    from zapa_bridge.config import Settings

_TAKE = LUA_RATE_TAKE + scripts.read(__package__, "pacing.take.lua")


@dataclass(frozen=True, slots=True)
class PacingRules:
    """The pacing settings, parsed."""

    recipient: RateLimit | None = None
    daily: int | None = None
    warmup: tuple[int, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> PacingRules:
        return cls(parse_rate(settings.recipient_rate_limit), settings.session_daily_limit,
                   parse_warmup(settings.session_warmup))

    @property
    def on(self) -> bool:
        return self.recipient is not None or self.daily is not None or bool(self.warmup)

    @property
    def counts_days(self) -> bool:
        return self.daily is not None or bool(self.warmup)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What pacing says of one message: `go` (`counted` now, or before), or wait `wait`
    seconds for its recipient's window (jitter included), or, over the daily limit with
    `sent` of `limit` used today, wait until `held_until` (epoch s, the real clock): the
    UTC day `opens` (YYYY-MM-DD, on the pacing clock)."""

    go: bool
    wait: float = 0.0
    held_until: float | None = None
    opens: str = ""
    sent: int = 0
    limit: int | None = None
    counted: bool = False


def jitter(wait: float, rng: random.Random | None = None) -> float:
    """A random share of a paced wait, up to JITTER_SHARE of it and JITTER_MOST seconds."""
    return (rng or random).uniform(0.0, min(JITTER_MOST, wait * JITTER_SHARE))


def utc_day(at: float) -> int:
    """UTC days since the epoch."""
    return math.floor(at / DAY)


class Pacing:
    """Checks and counts messages against the pacing limits (see the module's doc)."""

    def __init__(self, client: redis.Redis, rules: PacingRules, *,
                 test_clock: bool = False) -> None:
        """`test_clock`: read the pacing clock's offset from Redis (ZAPA_ENV=test only)."""
        self.redis = client
        self.rules = rules
        self.test_clock = test_clock
        self._take = client.register_script(_TAKE)

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> Pacing:
        return cls(client, PacingRules.from_settings(settings),
                   test_clock=settings.environment == "test")

    @property
    def on(self) -> bool:
        return self.rules.on

    def now(self) -> float:
        """The pacing clock: the real one, moved by a test's offset under ZAPA_ENV=test."""
        return time.time() + self._offset()

    def _offset(self) -> float:
        if not self.test_clock:
            return 0.0
        return float(optional_text(self.redis.get(keys.PACING_TEST_CLOCK)) or 0.0)

    def move_test_clock(self, to: float) -> None:
        """Set the pacing clock of every worker to `to` now (epoch s); tests only."""
        if not self.test_clock:
            raise RuntimeError("the pacing clock moves only with ZAPA_ENV=test")
        self.redis.set(keys.PACING_TEST_CLOCK, repr(to - time.time()))

    def take(self, message_id: str, record_key: str, session: str, recipient: str) -> Verdict:
        """Check the message (its record at `record_key`) against both limits of `session`,
        and count it when it passes."""
        offset = self._offset()
        now = time.time() + offset
        today = utc_day(now)
        daily, warmup, per = self.rules.daily, self.rules.warmup, self.rules.recipient
        log = keys.recipient_rate(session, recipient) if per else record_key
        answer = texts(self._take(
            keys=[record_key, log, keys.daily_sent(session, today),
                  keys.SESSION_FIRST_CONNECTED, keys.daily_holds(session, today),
                  keys.daily_full(today)],
            args=[repr(now), session, today, daily or "", ",".join(map(str, warmup)),
                  per.limit if per else "", repr(per.window) if per else "", message_id,
                  math.ceil(per.window * 1000) + _KEEP_MS if per else 0,
                  math.ceil((today + 2) * DAY - now)]))
        kind = answer[0]
        if kind == "wait":
            wait = float(answer[1])
            return Verdict(False, wait=wait + jitter(wait))
        if kind == "daily":
            seq, sent, limit = int(answer[1]), int(answer[2]), int(answer[3])
            # The next UTC midnight of the pacing clock, on the real clock; the session's
            # messages in the order they were held, all after the same jitter of the day.
            midnight = (today + 1) * DAY - offset
            spread = jitter(JITTER_MOST / JITTER_SHARE, random.Random(f"{session}:{today}"))
            return Verdict(False, held_until=midnight + seq * RELEASE_STEP + spread,
                           opens=time.strftime("%Y-%m-%d", time.gmtime((today + 1) * DAY)),
                           sent=sent, limit=limit)
        if kind == "go":
            return Verdict(True, sent=int(answer[1]),
                           limit=int(answer[2]) if answer[2] else None, counted=True)
        return Verdict(True)  # counted before, or no record to count

    def at_limit(self) -> dict[str, int]:
        """The sessions at their daily limit today, with the messages they sent today."""
        if not self.rules.counts_days:
            return {}
        today = utc_day(self.now())
        sessions = sorted(text_set(self.redis.smembers(keys.daily_full(today))))
        counts = [int(optional_text(value) or 0) for value in self.redis.mget(
            [keys.daily_sent(session, today) for session in sessions])] if sessions else []
        return dict(zip(sessions, counts, strict=True))
