"""When a failed send is tried again, and when we stop trying."""

from __future__ import annotations

import random
from dataclasses import dataclass

from zapa_bridge.config import Settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with jitter over a fixed retry budget."""

    max_retries: int
    base: float
    cap: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(max_retries=settings.max_retries, base=settings.retry_backoff,
                   cap=settings.retry_backoff_max)

    def allows(self, failures: int) -> bool:
        """Whether a message that has failed `failures` times may be tried again."""
        return failures <= self.max_retries

    def delay(self, failures: int, *, slow: bool = False,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before the next try; `slow` waits the cap (a configuration fault)."""
        ceiling = self.cap if slow else min(self.cap, self.base * 2 ** max(0, failures - 1))
        # Half fixed, half random: spreads a burst of retries without ever retrying at once.
        return (rng or random).uniform(ceiling / 2, ceiling)
