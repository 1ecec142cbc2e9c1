"""What the core reads of the broker's own keys in Redis: queue depths and ages, and which
messages a worker holds unacknowledged.

Those keys are kombu's layout, not ours, so the core only names what it needs here; the one
module that knows the layout is the Celery edge's workers/broker.py, which implements this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import redis

from zapa_bridge.store.publisher import TaskFormat


@dataclass(frozen=True, slots=True)
class QueueStat:
    """How many messages wait in a queue, and how long the oldest has waited (None: empty,
    or its age unknown)."""

    depth: int
    oldest_age: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"depth": self.depth,
                "oldest_age": None if self.oldest_age is None else round(self.oldest_age, 3)}


class BrokerLayout(Protocol):
    """The broker's side of Redis, as the Celery edge knows it."""

    def task_format(self) -> TaskFormat:
        """Celery's task message, for `Publisher`."""
        ...

    def queue_stats(self, client: redis.Redis, queues: Iterable[str]) -> dict[str, QueueStat]:
        """Depth and age of the oldest message of each queue, in one round trip."""
        ...

    def unacked_since(self, client: redis.Redis) -> dict[str, float]:
        """The task ids workers hold unacknowledged, each with when it was taken (epoch s)."""
        ...

    def oldest_enqueued_at(self, client: redis.Redis, queue: str) -> float | None:
        """When the oldest message still waiting in `queue` was published."""
        ...
