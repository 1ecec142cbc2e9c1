"""Enqueueing `send_message`: validation first, a record from the start, priority queues.

No worker runs here: these tests look at what lands in Redis.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.helpers import task_kwargs
from workers.tasks import send_message, services
from zapa_bridge.errors import InvalidMessage, QueueUnavailable
from zapa_bridge.outbound.dispatch import Dispatcher
from zapa_bridge.outbound.messages import build_message
from zapa_bridge.outbound.outbox import Outbox
from zapa_bridge.outbound.status_store import MessageStatus, StatusStore
from zapa_bridge.queues import Queue
from zapa_bridge.store.connection import redis_client
from zapa_bridge.store.publisher import Publisher

SEND_QUEUES = (Queue.SEND_HIGH, Queue.SEND_DEFAULT, Queue.SEND_LOW)


def queued_ids(client, queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(queue, 0, -1)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"to": "55119888x7777", "text": "hi"}, "to"),
        ({"to": "1234567", "text": "hi"}, "to"),
        ({"to": "1234567890123456", "text": "hi"}, "to"),
        ({"to": "5511988887777", "text": ""}, "text"),
        ({"to": "5511988887777", "text": "x " * 20_481}, "text"),  # 11 parts, over 10
        ({"to": "5511988887777", "type": "sticker"}, "type"),
        ({"to": "5511988887777", "type": "image"}, "media_url"),
        ({"to": "5511988887777", "type": "document", "media_url": "https://x.test/a.pdf"},
         "file_name"),
        ({"to": "5511988887777", "type": "location", "latitude": 91, "longitude": 0},
         "latitude"),
        ({"to": "5511988887777", "text": "hi", "priority": "urgent"}, "priority"),
    ],
)
def test_invalid_send_raises_naming_the_field_and_queues_nothing(redis_db, kwargs, field):
    with pytest.raises(InvalidMessage) as caught:
        send_message.delay(**kwargs)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidMessage):
        send_message.apply_async(kwargs=kwargs)
    assert list(redis_db.scan_iter("zapa*")) == []


def test_queued_message_has_a_record_under_its_task_id_from_the_start(redis_db):
    result = send_message.delay(to="5511988887777", text="hi", session="s1")
    record = services().store.get(result.id)
    assert record is not None
    assert (record.status, record.session, record.to, record.attempts) == (
        "queued", "s1", "5511988887777", 0)
    assert record.message == {"to": "5511988887777", "type": "text", "text": "hi",
                              "session": "s1", "priority": "default"}
    assert [entry["status"] for entry in record.history] == ["queued"]
    assert queued_ids(redis_db, Queue.SEND_DEFAULT) == [result.id]


def test_record_is_kept_until_sent_then_expires_after_the_retention(redis_db):
    result = send_message.delay(to="5511988887777", text="hi", session="s1")
    key = StatusStore.key(result.id)
    assert redis_db.ttl(key) == -1  # the queued message carries its id alone
    store = services().store
    store.transition(result.id, MessageStatus.SENDING)
    assert redis_db.ttl(key) == -1
    store.transition(result.id, MessageStatus.SENT)
    assert 7 * 24 * 3600 - 5 <= redis_db.ttl(key) <= 7 * 24 * 3600


def test_the_queued_message_carries_its_id_and_no_text(redis_db):
    result = send_message.delay(to="5511988887777", text="a private text", session="s1")
    (raw,) = redis_db.lrange(Queue.SEND_DEFAULT, 0, -1)
    assert "private" not in raw
    assert task_kwargs(json.loads(raw)) == {}
    assert json.loads(raw)["headers"]["id"] == result.id


@pytest.mark.parametrize(("priority", "queue"), [
    ("high", Queue.SEND_HIGH), ("default", Queue.SEND_DEFAULT), ("low", Queue.SEND_LOW)])
def test_each_priority_goes_to_its_own_queue(redis_db, priority, queue):
    result = send_message.delay(to="5511988887777", text="hi", session="s1", priority=priority)
    assert {name: queued_ids(redis_db, name) for name in SEND_QUEUES} == {
        name: ([result.id] if name == queue else []) for name in SEND_QUEUES}


def test_without_session_the_default_session_is_used(redis_db):
    result = send_message.delay("5511988887777", "hi")
    assert services().store.get(result.id).session == "default"


def test_from_number_is_kept_for_the_worker_to_resolve(redis_db):
    result = send_message.delay(to="5511988887777", text="hi", from_number="1234567890")
    record = services().store.get(result.id)
    assert (record.session, record.message["from_number"]) == (None, "1234567890")


def test_queued_message_carries_no_text_in_its_logged_arguments(redis_db):
    result = send_message.delay(to="5511988887777", text="secret words", session="s1")
    raw = json.loads(redis_db.lrange(Queue.SEND_DEFAULT, 0, -1)[0])
    assert raw["headers"]["id"] == result.id
    assert "secret" not in raw["headers"]["kwargsrepr"]
    assert "5511988887777" not in raw["headers"]["kwargsrepr"]


def test_queued_message_shows_only_its_masked_recipient_and_priority_once(redis_db):
    """kwargsrepr is kept in every waiting message: short, and in the headers only."""
    send_message.delay(to="5511988887777", text="hi", session="s1", priority="low")
    raw = json.loads(redis_db.lrange(Queue.SEND_LOW, 0, -1)[0])
    assert raw["headers"]["kwargsrepr"] == "{'to': '551********77', 'priority': 'low'}"
    assert "kwargsrepr" not in raw["properties"]


def test_reusing_a_message_id_is_refused(redis_db):
    first = send_message.apply_async(kwargs={"to": "5511988887777", "text": "hi"},
                                      task_id="fixed-id")
    assert first.id == "fixed-id"
    with pytest.raises(InvalidMessage) as caught:
        send_message.apply_async(kwargs={"to": "5511988887777", "text": "again"},
                                 task_id="fixed-id")
    assert caught.value.field == "task_id"
    assert queued_ids(redis_db, Queue.SEND_DEFAULT) == ["fixed-id"]


def test_unreachable_redis_raises_queue_unavailable(redis_db):
    client = redis_client("redis://127.0.0.1:1/0")
    dead = StatusStore(client, retention=60)
    publisher = Publisher(client, services().broker.task_format())
    outbox = Outbox(dead, Dispatcher(dead, publisher), publisher)
    with pytest.raises(QueueUnavailable):
        outbox.enqueue(build_message(to="5511988887777", text="hi", session="s1"))
    assert redis_db.llen(Queue.SEND_DEFAULT) == 0


@pytest.mark.parametrize("option", ["countdown", "eta", "queue"])
def test_scheduling_and_routing_options_are_refused(redis_db, option):
    with pytest.raises(InvalidMessage) as caught:
        send_message.apply_async(kwargs={"to": "5511988887777", "text": "hi"},
                                 **{option: 5 if option == "countdown" else "x"})
    assert caught.value.field == option
    assert list(redis_db.scan_iter("zapa*")) == []


def test_media_base64_over_zapws_body_limit_is_refused_and_nothing_enters_redis(redis_db):
    """A 120 KB base64 image makes a body over zapw's 100 KB limit: refused in the caller's
    hands, not retried into a dead letter that holds up the conversation."""
    image = base64.b64encode(bytes(90_000)).decode()  # 120,000 characters
    kwargs = {"to": "5511988887777", "type": "image", "media_base64": image, "session": "s1"}
    with pytest.raises(InvalidMessage) as caught:
        send_message.delay(**kwargs)
    assert caught.value.field == "media_base64"
    assert "over ZAPW_MAX_BODY_BYTES (102400)" in caught.value.reason
    assert "media_url" in caught.value.reason
    with pytest.raises(InvalidMessage):
        send_message.apply_async(kwargs=kwargs)
    assert list(redis_db.scan_iter("zapa*")) == []


def test_media_base64_that_fits_zapws_body_limit_is_queued(redis_db):
    image = base64.b64encode(bytes(75_000)).decode()  # 100,000 characters: about the most
    result = send_message.delay(to="5511988887777", type="image", media_base64=image,
                                session="s1")
    assert services().store.get(result.id).message["media_base64"] == image
    assert queued_ids(redis_db, Queue.SEND_DEFAULT) == [result.id]
