"""Task messages put on the broker's queues with one LPUSH, without Celery's producer.

The webhook intake queues its event inside the same Lua call that deduplicates it, enqueue
writes the status record and queues the message in one call, and workers hand on the next
message of a conversation with one command. `apply_async` costs about a millisecond of CPU
per call (producer pool, routing, retry policy, signals); this costs a small fraction.

The envelope is Celery's own: the Celery edge builds a `TaskFormat` once at start from
`app.amqp.as_task_v2` and kombu's `prepare_message` (workers/broker.py), so a Celery upgrade
changes it with no code here; this module fills in what differs per message (id, task,
queue, arguments). The body is stored as plain JSON (kombu's consumer decodes a body without
a `body_encoding` as it is), not base64 as kombu writes it: a third smaller in Redis.
`tests/test_wire.py` compares the result with a message Celery itself published and has a
real worker run such messages.

Each message carries the W3C `traceparent` (and `tracestate`) of the span current when it
is prepared, as a header of its own: Celery's producer is not there for the Celery
instrumentation to add it, and its worker side reads it from the task's headers.
"""

from __future__ import annotations

import copy
import enum
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from zapa_bridge.errors import QueueUnavailable
from zapa_bridge.outbound.messages import Priority
from zapa_bridge.queues import SEND_QUEUE_BY_PRIORITY, Queue
from zapa_bridge.redaction import mask_phone
from zapa_bridge.tracing import current_traceparent

ENQUEUED_AT_HEADER = "zapa_enqueued_at"
"""Stamped on every task message we publish, so queue stats can tell the oldest one's age."""

_dumps = json.JSONEncoder(separators=(",", ":")).encode


class TaskName(enum.StrEnum):
    """Our Celery tasks, by the names they are registered under."""

    SEND_MESSAGE = "zapa.send_message"
    HANDLE_EVENT = "zapa.handle_event"
    RECONCILE = "zapa.reconcile"
    RECOVER_EVENTS = "zapa.recover_events"


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """`payload` goes on the Redis list `queue` with LPUSH, as the broker transport would."""

    queue: str
    payload: str


@dataclass(frozen=True, slots=True)
class TaskFormat:
    """Celery's task message for no task in particular: the envelope (body, content type,
    headers, properties) and the body's trailing `embed` part (callbacks, chain, chord)."""

    envelope: Mapping[str, Any]
    embed: Mapping[str, Any]


class Publisher:
    """Builds our task messages from the `TaskFormat` and puts them on their queues."""

    def __init__(self, client: redis.Redis, task_format: TaskFormat) -> None:
        self.redis = client
        envelope = copy.deepcopy(dict(task_format.envelope))
        self._headers: dict[str, Any] = envelope.pop("headers")
        self._properties: dict[str, Any] = envelope.pop("properties")
        self._properties.pop("body_encoding", None)  # ours is plain JSON
        envelope.pop("body", None)
        self._envelope = envelope
        self._embed = dict(task_format.embed)

    def prepare(self, task: str, queue: str, kwargs: Mapping[str, Any], *,
                task_id: str | None = None, kwargsrepr: str = "",
                ignore_result: bool = True) -> PreparedMessage:
        """The message that `send_task(task, kwargs=..., queue=queue, task_id=...)` would
        publish, at priority 0."""
        task_id = task_id or str(uuid.uuid4())
        headers = {**self._headers, "task": task, "id": task_id, "root_id": task_id,
                   "argsrepr": "()", "kwargsrepr": kwargsrepr, "ignore_result": ignore_result,
                   ENQUEUED_AT_HEADER: time.time(), **current_traceparent()}
        properties = {**self._properties, "correlation_id": task_id,
                      "delivery_info": {"exchange": "", "routing_key": queue},
                      "delivery_tag": str(uuid.uuid4())}
        envelope = {**self._envelope, "body": _dumps([[], kwargs, self._embed]),
                    "headers": headers, "properties": properties}
        return PreparedMessage(queue=queue, payload=_dumps(envelope))

    def prepare_send(self, message_id: str, priority: Priority, to: str) -> PreparedMessage:
        """The `send_message` task of `message_id` on the queue of `priority`. It carries the
        id alone: the message is in its status record, which the worker reads anyway, so the
        text is stored once and never reaches the broker or Celery's logs."""
        # Short: Celery keeps it in every queued message, and it may reach logs (masked).
        shown = repr({"to": mask_phone(to), "priority": str(priority)})
        return self.prepare(TaskName.SEND_MESSAGE, SEND_QUEUE_BY_PRIORITY[priority], {},
                            task_id=message_id, kwargsrepr=shown)

    def prepare_event(self, event: Any, *, kwargsrepr: str,
                      task_id: str | None = None) -> PreparedMessage:
        """The `handle_event` task of one zapw event (its envelope as zapw posted it)."""
        return self.prepare(TaskName.HANDLE_EVENT, Queue.EVENTS, {"event": event},
                            task_id=task_id, kwargsrepr=kwargsrepr)

    def prepare_reconcile(self) -> PreparedMessage:
        return self.prepare(TaskName.RECONCILE, Queue.MAINTENANCE, {})

    def publish(self, message: PreparedMessage) -> None:
        """One LPUSH; raises `QueueUnavailable` when the broker cannot take it."""
        try:
            self.redis.lpush(message.queue, message.payload)
        except redis.RedisError as exc:
            raise QueueUnavailable(f"broker unreachable: {type(exc).__name__}") from None

    def send(self, message_id: str, priority: Priority, to: str) -> None:
        """Put the send task of `message_id` on the queue of `priority` (`to` is shown
        masked in its kwargsrepr)."""
        self.publish(self.prepare_send(message_id, priority, to))
