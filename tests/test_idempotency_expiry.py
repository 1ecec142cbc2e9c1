"""Idempotency keys (one message per key, even when calls race) and stale-reply expiry."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import recipient, wait_until
from workers.tasks import send_message, services
from zapa_bridge.errors import InvalidMessage
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.queues import Queue
from zapa_bridge.web import create_app

TO = "5511988887777"
ADMIN = {"Authorization": "Bearer " + os.environ["ZAPA_ADMIN_TOKEN"]}


def test_the_same_idempotency_key_returns_the_same_id_and_queues_once(redis_db):
    first = send_message.delay(to=TO, text="hi", session="s1", idempotency_key="order-1")
    again = send_message.delay(to=TO, text="hi", session="s1", idempotency_key="order-1")
    other = send_message.delay(to=recipient(2), text="hi", session="s1",
                               idempotency_key="order-2")
    assert again.id == first.id
    assert other.id != first.id
    assert redis_db.llen(Queue.SEND_DEFAULT) == 2


def test_a_call_that_loses_its_key_leaves_no_record_behind_in_the_conversation(redis_db):
    """Record and key are taken in one step: a worker finishing the conversation's head can
    never hand its turn to the losing call's message."""
    first = send_message.delay(to=TO, text="hi", session="s1", idempotency_key="order-1")
    again = send_message.apply_async(
        kwargs={"to": TO, "text": "hi", "session": "s1", "idempotency_key": "order-1"},
        task_id="the-loser")
    assert again.id == first.id
    assert services().store.get("the-loser") is None
    assert redis_db.hget("zapa:lane-heads", f"s1>{TO}") == first.id
    assert redis_db.zrange(f"zapa:lane:s1>{TO}", 0, -1) == []


def test_racing_calls_with_one_key_queue_one_message_each_time(redis_db):
    def send(n: int) -> str:
        return send_message.delay(to=recipient(n), text="race", session="s1",
                                  idempotency_key=f"race-{n}").id

    with ThreadPoolExecutor(max_workers=2) as pool:
        pairs = [list(pool.map(send, [n, n])) for n in range(100)]
    assert all(a == b for a, b in pairs)
    assert len({a for a, _ in pairs}) == 100
    assert redis_db.llen(Queue.SEND_DEFAULT) == 100


@pytest.mark.slow
def test_raced_idempotent_sends_reach_the_bridge_once(start_worker, zapw):
    zapw.add_session("s1")
    start_worker()

    def send(n: int) -> str:
        return send_message.delay(to=TO, text=f"m{n // 2}", session="s1",
                                  idempotency_key=f"k{n // 2}").id

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = set(pool.map(send, range(20)))
    assert len(ids) == 10
    wait_until(lambda: all(services().store.get(i).status == MessageStatus.SENT for i in ids),
               what="10 sent")
    assert sorted(send.body["text"] for send in zapw.sent_to("s1")) == sorted(
        f"m{n}" for n in range(10))


def test_the_http_send_route_honours_the_idempotency_key_header(redis_db):
    client = create_app({"TESTING": True}).test_client()
    headers = {**ADMIN, "Idempotency-Key": "http-1"}
    body = {"to": TO, "text": "hi", "session": "s1"}
    first = client.post("/api/v1/integration/messages", json=body, headers=headers)
    again = client.post("/api/v1/integration/messages", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json["id"] == first.json["id"]
    assert redis_db.llen(Queue.SEND_DEFAULT) == 1


@pytest.mark.parametrize(("fields", "field"), [
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"idempotency_key": "x" * 201}, "idempotency_key"),
    ({"ttl": 0}, "ttl"),
    ({"ttl": "soon"}, "ttl"),
    ({"ttl": 5, "expires_at": time.time() + 5}, "ttl"),
    ({"expires_at": float("nan")}, "expires_at"),
])
def test_bad_idempotency_key_or_expiry_names_the_field(redis_db, fields, field):
    with pytest.raises(InvalidMessage) as caught:
        send_message.delay(to=TO, text="hi", session="s1", **fields)
    assert caught.value.field == field
    assert list(redis_db.scan_iter("zapa*")) == []


@pytest.mark.slow
def test_a_reply_not_sent_before_its_expiry_expires_instead_of_arriving_late(start_worker,
                                                                              zapw):
    zapw.add_session("s1")
    late = send_message.delay(to=TO, text="too late", session="s1", ttl=0.2)
    fresh = send_message.delay(to=TO, text="in time", session="s1", ttl=300)
    wait_until(lambda: time.time() > services().store.get(late.id).created + 0.3,
               what="the ttl to pass")
    start_worker()
    wait_until(lambda: services().store.get(fresh.id).status == MessageStatus.SENT,
               what="the fresh one sent")
    record = wait_until(lambda: (r := services().store.get(late.id)).status ==
                        MessageStatus.EXPIRED and r, what="the late one expired")
    assert record.reason == "expired: not sent before its expires_at"
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["in time"]
    assert [dead.id for dead in services().dead_letters.list()] == [late.id]


@pytest.mark.slow
def test_a_replayed_expired_reply_is_sent(start_worker, zapw):
    zapw.add_session("s1")
    late = send_message.delay(to=TO, text="send anyway", session="s1", ttl=0.1)
    wait_until(lambda: time.time() > services().store.get(late.id).created + 0.2,
               what="the ttl to pass")
    start_worker()
    wait_until(lambda: services().store.get(late.id).status == MessageStatus.EXPIRED,
               what="expired")
    services().outbox.replay(late.id)
    wait_until(lambda: services().store.get(late.id).status == MessageStatus.SENT,
               what="sent after the replay")
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["send anyway"]
    assert "expires_at" not in services().store.get(late.id).message


def test_a_key_left_by_a_call_that_failed_to_queue_is_taken_over_once(redis_db):
    """A key whose message has no record was left by a call that never queued: the next
    calls take it over, and when they race only one of them does."""
    redis_db.set("zapa:idempotency:left", "never-queued")

    def send(n: int) -> str:
        return send_message.delay(to=recipient(n), text="again", session="s1",
                                  idempotency_key="left").id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(send, range(8)))
    assert len(set(ids)) == 1
    assert ids[0] != "never-queued"
    assert redis_db.get("zapa:idempotency:left") == ids[0]
    assert redis_db.llen(Queue.SEND_DEFAULT) == 1
