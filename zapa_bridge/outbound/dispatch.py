"""Messages that wait in Redis rather than in a Celery countdown, and their publishing.

A message waits here when the rate limit of its session has no slot left (until the slot
frees), when pacing puts it off (zapa_bridge.outbound.pacing: its recipient's window, or,
held, its session's next day), or when its turn in its conversation has just come (due at
once). Waits of any length
are safe here: a Celery countdown is held unacked by one worker and redelivered to another
once it outlasts the visibility timeout. Every worker runs `move_due` a few times a second;
taking a due message and marking it pending is one atomic step, so one worker publishes it.
A crash between taking and publishing leaves it pending, and the lost-message sweep of
zapa_bridge.outbound.recovery queues it again. A worker that finishes a message takes the
next one of its conversation in that same status change (`hand_on`), so it skips the due
set: it sends it itself, or publishes it here (`publish_taken`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import redis

from zapa_bridge.errors import QueueUnavailable
from zapa_bridge.logs import line
from zapa_bridge.outbound.holds import waits_for_its_day
from zapa_bridge.outbound.messages import Priority
from zapa_bridge.outbound.status_store import MessageStatus, StatusStore, Transition, Turn
from zapa_bridge.store import scripts
from zapa_bridge.store.keys import DUE, PENDING
from zapa_bridge.store.publisher import Publisher

log = logging.getLogger("zapa.dispatch")

BATCH = 200

_TAKE = scripts.read(__package__, "dispatch.take.lua")

_DEFER = scripts.read(__package__, "dispatch.defer.lua")


class Dispatcher:
    """Defers messages to a later moment and publishes them when it comes; the one place a
    recorded message is put back on its queue (`requeue`)."""

    def __init__(self, store: StatusStore, publisher: Publisher) -> None:
        self.store = store
        self.redis: redis.Redis = store.redis
        self.publisher = publisher
        self._take = self.redis.register_script(_TAKE)
        self._defer = self.redis.register_script(_DEFER)

    def defer(self, message_id: str, until: float) -> None:
        """Take the message out of the queues' view until `until` (epoch seconds)."""
        self._defer(keys=[DUE, PENDING], args=[message_id, repr(until)])

    def dispatch_now(self, message_id: str) -> bool:
        """Publish a message that is due, unless another worker took it first."""
        taken = self._take(keys=[DUE, PENDING],
                           args=[repr(time.time()), 1, message_id])
        return bool(taken) and self._publish(message_id)

    def hand_on(self, change: Transition) -> bool:
        """Publish the message whose turn came with `change`: the one it took (asked with
        `hand_on=True`), or else the one it marked due, unless another worker took it."""
        if change.taken is not None:
            return self.publish_taken(change.taken)
        return change.dispatch is not None and self.dispatch_now(change.dispatch)

    def publish_taken(self, turn: Turn) -> bool:
        """Publish the next message of a conversation that a change took (pending)."""
        return self._publish_message(turn.id, turn.message)

    def move_due(self, now: float | None = None) -> int:
        """Publish the messages whose moment has come; returns how many."""
        moved = 0
        while True:
            ids = self._take(keys=[DUE, PENDING],
                             args=[repr(now or time.time()), BATCH, ""])
            for message_id in ids:
                moved += self._publish(message_id)
            if len(ids) < BATCH:
                return moved

    def waiting(self) -> int:
        """How many messages wait for their moment."""
        return int(self.redis.zcard(DUE))

    def _publish(self, message_id: str) -> bool:
        record = self.store.get(message_id)
        if record is None or (record.status not in (MessageStatus.QUEUED, MessageStatus.SENDING)
                              and not waits_for_its_day(record)):
            # Finished meanwhile (or its record is gone): nothing to queue.
            self.redis.zrem(PENDING, message_id)
            return False
        return self._publish_message(message_id, record.message)

    def requeue(self, message_id: str, stored: Mapping[str, Any]) -> bool:
        """Put a recorded message (`stored`: the fields its record keeps) back on its
        priority queue under its id. One that cannot be queued becomes a dead letter, which
        takes it out of `zapa:pending` and lets its conversation go on; a broker failure
        raises `QueueUnavailable`."""
        try:
            priority = Priority(stored.get("priority", Priority.DEFAULT))
        except ValueError:
            names = ", ".join(member.value for member in Priority)
            self.hand_on(self.store.transition(
                message_id, MessageStatus.FAILED, note="dead letter", hand_on=True,
                fields={"reason": f"invalid message: priority: must be one of {names}"}))
            return False
        self.publisher.send(message_id, priority, str(stored.get("to", "")))
        return True

    def _publish_message(self, message_id: str, stored: Mapping[str, Any]) -> bool:
        """Publish a message taken for publishing (pending), as its record keeps it."""
        try:
            return self.requeue(message_id, stored)
        except QueueUnavailable:
            # Put it back to be taken again; if Redis is gone too, the sweep recovers it.
            with contextlib.suppress(redis.RedisError):
                self.defer(message_id, time.time() + 1.0)
            log.warning(line("message.dispatch_failed", message_id=message_id))
            return False
