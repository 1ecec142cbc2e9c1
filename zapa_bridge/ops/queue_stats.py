"""Depth and age of the Celery queues, read straight from their Redis lists.

kombu pushes on the left and workers pop on the right, so the oldest waiting message is
the last element; its `zapa_enqueued_at` header (stamped on every publish) gives its age.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

ENQUEUED_AT_HEADER = "zapa_enqueued_at"


@dataclass(frozen=True, slots=True)
class QueueStat:
    depth: int
    oldest_age: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"depth": self.depth,
                "oldest_age": None if self.oldest_age is None else round(self.oldest_age, 3)}


class QueueStats:
    def __init__(self, client: redis.Redis, queues: list[str]) -> None:
        self.redis = client
        self.queues = list(queues)

    def all(self) -> dict[str, QueueStat]:
        pipe = self.redis.pipeline(transaction=False)
        for name in self.queues:
            pipe.llen(name)
            pipe.lindex(name, -1)
        answers = pipe.execute()
        now = time.time()
        stats = {}
        for index, name in enumerate(self.queues):
            depth, oldest = answers[2 * index], answers[2 * index + 1]
            stats[name] = QueueStat(int(depth), _age(oldest, now))
        return stats


def _age(raw: str | None, now: float) -> float | None:
    if not raw:
        return None
    try:
        enqueued = json.loads(raw)["headers"].get(ENQUEUED_AT_HEADER)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return max(0.0, now - float(enqueued)) if enqueued is not None else None
