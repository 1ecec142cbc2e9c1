"""The sweep that re-queues messages the broker lost between a worker's pop and its ack
bookkeeping (kombu's Redis transport is not atomic there)."""

from __future__ import annotations

import json

from tests.helpers import recipient
from workers.celery_app import app
from workers.tasks import send_message, services
from zapa_bridge.outbound.recovery import LostMessageSweeper
from zapa_bridge.queues import SEND_QUEUE_BY_PRIORITY, Queue
from zapa_bridge.store import keys

TO = "5511988887777"
UNACKED = app.conf.broker_transport_options["unacked_key"]


def sweeper(lost_after: float = 0.0) -> LostMessageSweeper:
    return LostMessageSweeper(
        services().store, services().dispatcher, services().broker,
        queue_by_priority={str(p): str(q) for p, q in SEND_QUEUE_BY_PRIORITY.items()},
        lost_after=lost_after)


def ids_in(client, queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(queue, 0, -1)]


def test_a_message_popped_and_lost_is_queued_again(redis_db):
    lost = send_message.delay(to=TO, text="lost", session="s1").id
    redis_db.rpop(Queue.SEND_DEFAULT)  # a worker's BRPOP, then the worker died
    assert ids_in(redis_db, Queue.SEND_DEFAULT) == []
    assert sweeper().sweep() == [lost]
    assert ids_in(redis_db, Queue.SEND_DEFAULT) == [lost]


def test_messages_still_waiting_or_with_a_worker_are_left_alone(redis_db):
    waiting = [send_message.delay(to=recipient(n), text=f"w{n}", session="s1").id
               for n in range(3)]
    taken = send_message.delay(to=TO, text="taken", priority="high", session="s1").id
    raw = redis_db.rpop(Queue.SEND_HIGH)
    redis_db.hset(UNACKED, "tag-1", json.dumps([json.loads(raw), "", Queue.SEND_HIGH]))
    assert sweeper().sweep() == []
    assert ids_in(redis_db, Queue.SEND_DEFAULT) == list(reversed(waiting))
    assert taken not in ids_in(redis_db, Queue.SEND_HIGH)


def test_a_message_is_not_called_lost_before_lost_after(redis_db):
    send_message.delay(to=TO, text="lost", session="s1")
    redis_db.rpop(Queue.SEND_DEFAULT)
    assert sweeper(lost_after=60).sweep() == []


def test_finished_and_held_messages_leave_the_pending_index(redis_db):
    message_id = send_message.delay(to=TO, text="x", session="s1").id
    store = services().store
    assert redis_db.zscore(keys.PENDING, message_id) is not None
    store.transition(message_id, "sending")
    store.transition(message_id, "held")
    assert redis_db.zscore(keys.PENDING, message_id) is None
    store.transition(message_id, "queued")
    store.transition(message_id, "sending")
    store.transition(message_id, "sent")
    assert redis_db.zscore(keys.PENDING, message_id) is None


def test_a_lost_message_that_cannot_be_queued_becomes_a_dead_letter(redis_db):
    """It leaves the pending index with its reason rather than being swept forever."""
    lost = send_message.delay(to=TO, text="lost", session="s1").id
    redis_db.rpop(Queue.SEND_DEFAULT)
    store = services().store
    fields = dict(store.get(lost).message, priority="urgent")
    redis_db.set(store.body_key(lost), json.dumps(fields))
    assert sweeper().sweep() == []
    record = store.get(lost)
    assert (record.status, record.reason) == (
        "failed", "invalid message: priority: must be one of high, default, low")
    assert redis_db.zscore(keys.PENDING, lost) is None
    assert ids_in(redis_db, Queue.SEND_DEFAULT) == []
