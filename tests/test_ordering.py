"""Per-conversation order: one session's messages to one recipient go in the order they were
enqueued, whatever happens to an earlier one; other conversations are not held back."""

from __future__ import annotations

import pytest

from tests.helpers import recipient, wait_until
from workers.tasks import release_held, send_message, services
from zapa_bridge.outbound.status_store import (
    Created,
    MessageStatus,
    StatusStore,
    Turn,
)
from zapa_bridge.queues import Queue
from zapa_bridge.store import keys

S = MessageStatus
TO = "5511988887777"
LANE = f"s1>{TO}"


@pytest.fixture
def store(redis_db: object) -> StatusStore:
    return services().store


def create(store: StatusStore, message_id: str) -> Created:
    return store.create(message_id, {"to": TO, "text": message_id, "session": "s1"},
                        session="s1", lane=LANE)


def finish(store: StatusStore, message_id: str, status: MessageStatus = S.SENT) -> str | None:
    store.transition(message_id, S.SENDING)
    return store.transition(message_id, status).dispatch


def test_only_the_first_message_of_a_conversation_is_ready(store):
    assert [create(store, m) for m in ("m1", "m2", "m3")] == [
        Created.READY, Created.WAITING, Created.WAITING]
    assert store.turn_of(LANE) == "m1"
    # Waiting messages are neither pending (in a queue) nor due.
    assert store.redis.zscore("zapa:pending", "m2") is None
    assert store.redis.zscore(keys.DUE, "m2") is None
    assert store.redis.ttl(store.key("m2")) == -1  # kept until its turn
    assert store.get("m2").history[0]["note"] == "queued behind earlier messages"


def test_a_finished_message_hands_its_turn_to_the_next_one_marked_due(store):
    for m in ("m1", "m2", "m3"):
        create(store, m)
    assert finish(store, "m1") == "m2"
    assert store.turn_of(LANE) == "m2"
    assert store.redis.zscore(keys.DUE, "m2") is not None
    assert finish(store, "m2", S.FAILED) == "m3"  # a dead letter lets the next one go too
    assert finish(store, "m3") is None
    assert store.turn_of(LANE) is None


def test_a_later_status_of_a_sent_message_hands_nothing_on(store):
    create(store, "m1")
    create(store, "m2")
    finish(store, "m1")
    assert store.transition("m1", S.DELIVERED).dispatch is None
    assert store.turn_of(LANE) == "m2"


def test_a_replayed_dead_letter_goes_to_the_back_of_its_conversation(redis_db):
    first = send_message.delay(to=TO, text="first", session="s1").id
    second = send_message.delay(to=TO, text="second", session="s1").id
    store = services().store
    store.transition(first, S.SENDING)
    store.transition(first, S.FAILED, fields={"reason": "test"})
    assert store.turn_of(LANE) == second
    replayed = services().outbox.replay(first)
    assert replayed.status is S.QUEUED
    assert redis_db.zscore("zapa:pending", first) is None  # waits behind `second`
    store.transition(second, S.SENDING)
    assert store.transition(second, S.SENT).dispatch == first


def test_a_replayed_dead_letter_with_its_conversation_idle_is_queued_at_once(redis_db):
    message_id = send_message.delay(to=TO, text="x", session="s1").id
    redis_db.delete(Queue.SEND_DEFAULT)
    store = services().store
    store.transition(message_id, S.SENDING)
    store.transition(message_id, S.FAILED, fields={"reason": "test"})
    services().outbox.replay(message_id)
    assert redis_db.llen(Queue.SEND_DEFAULT) == 1
    assert store.turn_of(LANE) == message_id


def test_only_the_head_of_each_conversation_is_queued(redis_db):
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(5)]
    others = [send_message.delay(to=recipient(n), text="o", session="s1").id for n in range(3)]
    assert redis_db.llen(Queue.SEND_DEFAULT) == 1 + len(others)
    assert services().store.turn_of(LANE) == ids[0]


@pytest.mark.slow
def test_a_conversation_is_sent_in_order_through_failures_while_others_flow(start_worker,
                                                                          zapw):
    zapw.add_session("s1")
    start_worker()
    zapw.fail_next(3)  # the first sends fail and are retried
    ordered = [send_message.delay(to=TO, text=f"m{n:02d}", session="s1").id
               for n in range(20)]
    others = [send_message.delay(to=recipient(n), text=f"o{n}", session="s1").id
              for n in range(20)]
    wait_until(lambda: all(r.status is S.SENT for r in services().store.get_many(
        ordered + others)), timeout=30, what="40 messages sent")
    texts = [send.body["text"] for send in zapw.sent_to() if send.body["to"] == TO]
    assert texts == [f"m{n:02d}" for n in range(20)]
    assert services().store.turn_of(LANE) is None


@pytest.mark.slow
def test_a_held_head_holds_its_conversation_back_until_released(start_worker, zapw):
    zapw.add_session("s1", connected=False)
    start_worker()
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(3)]
    wait_until(lambda: services().store.get(ids[0]).status is S.HELD, what="head held")
    assert [r.status for r in services().store.get_many(ids[1:])] == [S.QUEUED, S.QUEUED]
    assert services().held.ids("s1") == [ids[0]]

    zapw.set_connected("s1", True)
    release_held.delay("s1")
    wait_until(lambda: all(r.status is S.SENT for r in services().store.get_many(ids)),
               what="all sent")
    assert [send.body["text"] for send in zapw.sent_to()] == ["m0", "m1", "m2"]


def test_a_finished_message_asked_to_hand_on_takes_the_next_one_for_its_caller(store):
    for m in ("m1", "m2", "m3"):
        create(store, m)
    store.transition("m1", S.SENDING)
    change = store.transition("m1", S.SENT, hand_on=True)
    assert change.taken == Turn("m2", {"to": TO, "text": "m2", "session": "s1"})
    assert change.dispatch is None
    assert store.turn_of(LANE) == "m2"
    # Taken as the due-message mover would take it: pending (in a queue from now on).
    assert store.redis.zscore(keys.DUE, "m2") is None
    assert store.redis.zscore(keys.PENDING, "m2") is not None
    assert store.redis.zscore(keys.PENDING, "m3") is None


def test_a_next_message_without_a_record_is_left_to_the_due_mover(store):
    create(store, "m1")
    create(store, "m2")
    store.redis.delete(store.key("m2"))
    store.transition("m1", S.SENDING)
    change = store.transition("m1", S.SENT, hand_on=True)
    assert (change.taken, change.dispatch) == (None, "m2")
    assert store.redis.zscore(keys.DUE, "m2") is not None
    assert store.redis.zscore(keys.PENDING, "m2") is None
