"""kombu's Redis layout, the one place that knows it: the task message Celery would publish
(for the core's `Publisher`), and the readers of queues and of the unacked hash.

kombu's Redis transport keeps a queue as a list (LPUSH on the left, BRPOP on the right, so
the oldest waiting message is the last element) and each message a worker took but has not
acknowledged in a hash under `unacked_key`, as `[message, exchange, routing key]`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import redis
from celery import Celery
from kombu import Connection
from kombu.entity import DELIVERY_MODES

from zapa_bridge.store.broker import QueueStat
from zapa_bridge.store.publisher import ENQUEUED_AT_HEADER, TaskFormat

_SAMPLE_ID = "00000000-0000-0000-0000-000000000000"


class KombuRedisLayout:
    """`zapa_bridge.store.broker.BrokerLayout` for Celery on kombu's Redis transport."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.unacked_key: str = app.conf.broker_transport_options["unacked_key"]
        self.unacked_index_key: str = app.conf.broker_transport_options["unacked_index_key"]

    def task_format(self) -> TaskFormat:
        """Celery's message for a task with no arguments, built by Celery and kombu
        themselves: `as_task_v2` gives headers and properties, the producer adds the
        delivery mode, and the channel's `prepare_message` wraps them."""
        sample = self.app.amqp.as_task_v2(_SAMPLE_ID, "sample", args=(), kwargs={},
                                          root_id=_SAMPLE_ID, ignore_result=True,
                                          argsrepr="()", kwargsrepr="")
        mode = self.app.conf.task_default_delivery_mode
        properties = {**sample.properties,
                      "delivery_mode": DELIVERY_MODES.get(mode, mode)}
        with Connection("memory://") as connection:
            envelope = connection.default_channel.prepare_message(
                "", 0, "application/json", "utf-8", dict(sample.headers), properties)
        return TaskFormat(envelope=envelope, embed=dict(sample.body[2]))

    def queue_stats(self, client: redis.Redis, queues: Iterable[str]) -> dict[str, QueueStat]:
        names = list(queues)
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
            pipe.lindex(name, -1)
        answers = pipe.execute()
        now = time.time()
        stats = {}
        for index, name in enumerate(names):
            depth, oldest = answers[2 * index], answers[2 * index + 1]
            enqueued = _enqueued_at(oldest)
            stats[name] = QueueStat(int(depth),
                                    None if enqueued is None else max(0.0, now - enqueued))
        return stats

    def unacked_since(self, client: redis.Redis) -> dict[str, float]:
        """kombu's unacked hash (delivery tag -> message) with its index (delivery tag ->
        when taken), read together."""
        pipe = client.pipeline(transaction=True)
        pipe.hgetall(self.unacked_key)
        pipe.zrange(self.unacked_index_key, 0, -1, withscores=True)
        held, index = pipe.execute()
        taken = {_text(tag): float(score) for tag, score in index}
        since = {}
        for tag, raw in held.items():
            task_id = _task_id(raw)
            if task_id is not None:
                since[task_id] = taken.get(_text(tag), 0.0)
        return since

    def oldest_enqueued_at(self, client: redis.Redis, queue: str) -> float | None:
        return _enqueued_at(client.lindex(queue, -1))


def _task_id(raw: Any) -> str | None:
    """The task id of an unacked entry, `[message, exchange, routing key]`."""
    try:
        return str(json.loads(raw)[0]["headers"]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _enqueued_at(raw: Any) -> float | None:
    if not raw:
        return None
    try:
        return float(json.loads(raw)["headers"][ENQUEUED_AT_HEADER])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None

