"""Finds and re-queues messages the broker lost.

kombu's Redis transport pops a message (BRPOP) and only then records it as unacked: a worker
killed between the two loses it, and its record stays `queued` with no copy anywhere. The
sweep looks at messages pending longer than `lost_after` that are neither with a worker
(kombu's unacked hash) nor possibly still waiting in their queue (queues are FIFO: a message
older than the oldest one still waiting has left the queue), and publishes them again under
their id (`Dispatcher.requeue`). A copy that was not really lost is harmless: the record
lets only one send through. What the broker holds is read through `BrokerLayout` (the
Celery edge knows kombu's keys).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

import redis

from zapa_bridge.logs import line
from zapa_bridge.outbound.dispatch import Dispatcher
from zapa_bridge.outbound.status_store import MessageStatus, StatusStore
from zapa_bridge.store.broker import BrokerLayout
from zapa_bridge.store.keys import PENDING
from zapa_bridge.store.replies import scored

log = logging.getLogger("zapa.recovery")

# Clock noise between a record's time and its message's enqueue stamp.
ORDER_MARGIN = 1.0
SWEEP_LIMIT = 1000


class LostMessageSweeper:
    def __init__(self, store: StatusStore, dispatcher: Dispatcher, broker: BrokerLayout, *,
                 queue_by_priority: Mapping[str, str], lost_after: float) -> None:
        self.store = store
        self.redis: redis.Redis = store.redis
        self.dispatcher = dispatcher
        self.broker = broker
        self.queue_by_priority = dict(queue_by_priority)
        self.lost_after = lost_after

    def sweep(self, now: float | None = None, *, lost_after: float | None = None,
              pending_before: float | None = None,
              statuses: Iterable[MessageStatus] = (MessageStatus.QUEUED,
                                                   MessageStatus.SENDING),
              taken_before: float | None = None) -> list[str]:
        """Queue again the lost messages pending for `lost_after` (default: the sweeper's)
        and since `pending_before` at the latest, among records in `statuses`.
        `taken_before`: a worker died then; a message a worker took before it, and still
        holds unacknowledged, may be held by the dead one, and goes again too (a copy a
        live worker also runs is harmless: the record lets one send through)."""
        now = now or time.time()
        latest = now - (self.lost_after if lost_after is None else lost_after)
        if pending_before is not None:
            latest = min(latest, pending_before)
        wanted = frozenset(statuses)
        candidates = scored(self.redis.zrangebyscore(
            PENDING, "-inf", latest, start=0, num=SWEEP_LIMIT, withscores=True))
        if not candidates:
            return []
        taken = self.broker.unacked_since(self.redis)
        oldest = {queue: self.broker.oldest_enqueued_at(self.redis, queue)
                  for queue in set(self.queue_by_priority.values())}
        recovered = []
        for message_id, pending_since in candidates:
            taken_at = taken.get(message_id)
            if taken_at is not None and (taken_before is None or taken_at >= taken_before):
                continue  # with a live worker
            record = self.store.get(message_id)
            if record is None or record.status not in (MessageStatus.QUEUED,
                                                       MessageStatus.SENDING):
                self.redis.zrem(PENDING, message_id)
                continue
            if record.status not in wanted:
                continue
            waiting_since = oldest.get(self.queue_by_priority.get(record.priority, ""))
            if taken_at is None and waiting_since is not None \
                    and pending_since >= waiting_since - ORDER_MARGIN:
                continue  # it may still be in its queue, behind the oldest one there
            if not self.dispatcher.requeue(message_id, record.message):
                continue  # a dead letter now, out of `zapa:pending`
            self.redis.zadd(PENDING, {message_id: now})
            log.warning(line("message.recovered", message_id=message_id,
                             session=record.session, status=record.status))
            recovered.append(message_id)
        return recovered
