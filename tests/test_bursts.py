"""Inbound bursts on the suite's Redis: messages of one sender within the window are handed
to ZAPA_INBOUND_TASK as one task, once, when the mover finds the burst closed."""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

import pytest

from tests.helpers import task_kwargs
from workers.broker import KombuRedisLayout
from workers.tasks import app as celery_app
from zapa_bridge.config import load_settings
from zapa_bridge.errors import ConfigError
from zapa_bridge.inbound.bursts import BURSTS_COUNTER, COALESCED_COUNTER, Bursts
from zapa_bridge.inbound.events import parse_event
from zapa_bridge.services import Services
from zapa_bridge.store import keys
from zapa_bridge.web import create_app

PATH = "/api/v1/webhooks/whatsapp"
WINDOW = 1.5
SETTINGS = load_settings(ZAPA_INBOUND_COALESCE=str(WINDOW), ZAPA_INBOUND_COALESCE_MAX="4")
INBOUND_QUEUE = SETTINGS.inbound_queue


def received(message_id: str, text: str | None = "hi", *, sender: str = "5511988887777",
             **data: Any) -> dict[str, Any]:
    body = {"from": f"{sender}@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
            "messageId": message_id, "timestamp": 1700000000000, "isGroup": False,
            "type": "text", "text": text, **data}
    return {"sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
            "timestamp": 1795599514484, "data": body}


@pytest.fixture
def client(redis_db):
    return create_app({"TESTING": True, "SETTINGS": SETTINGS}).test_client()


@pytest.fixture
def bursts(redis_db) -> Bursts:
    return Services(SETTINGS, KombuRedisLayout(celery_app)).bursts


def post(client: Any, event: dict[str, Any]) -> str:
    answer = client.post(PATH, json=event, query_string={"token": os.environ["ZAPA_WEBHOOK_TOKEN"]},
                         headers={"X-Webhook-Event": event["eventType"]})
    assert answer.status_code == 200, answer.json
    return str(answer.json["status"])


def tasks(redis_db: Any) -> list[dict[str, Any]]:
    """The `message` keyword of every task handed on, oldest first."""
    queued = [json.loads(raw) for raw in reversed(redis_db.lrange(INBOUND_QUEUE, 0, -1))]
    return [task_kwargs(task)["message"] for task in queued]


def test_a_burst_of_three_is_one_task_with_every_message_once_the_window_closes(
        client, bursts, redis_db):
    for number, text in enumerate(["hi", "I need", "help with my order"]):
        assert post(client, received(f"M{number}", text)) == "accepted"
    assert tasks(redis_db) == []
    assert bursts.move_due(time.time()) == 0  # still open
    assert bursts.move_due(time.time() + WINDOW + 0.1) == 1
    [message] = tasks(redis_db)
    assert message["id"] == "s1:M2"
    assert message["text"] == "hi\nI need\nhelp with my order"
    assert [part["id"] for part in message["burst"]] == ["s1:M0", "s1:M1", "s1:M2"]
    assert [part["text"] for part in message["burst"]] == ["hi", "I need", "help with my order"]
    assert all(part["type"] == "text" and part["has_media"] is False
               for part in message["burst"])
    # Handed on once: later rounds find nothing, nothing waits.
    assert bursts.move_due(time.time() + 60) == 0
    assert len(tasks(redis_db)) == 1
    assert bursts.waiting() == 0
    assert redis_db.exists(keys.burst("s1", "5511988887777")) == 0
    counters = redis_db.hgetall(keys.METRICS_COUNTERS)
    assert int(counters[BURSTS_COUNTER]) == 1 and int(counters[COALESCED_COUNTER]) == 3


def test_a_redelivered_webhook_does_not_join_its_burst_twice(client, bursts, redis_db):
    event = received("M0", "hi")
    assert post(client, event) == "accepted"
    assert post(client, copy.deepcopy(event)) == "duplicate"
    assert post(client, received("M1", "there")) == "accepted"
    assert bursts.move_due(time.time() + WINDOW + 0.1) == 1
    [message] = tasks(redis_db)
    assert [part["id"] for part in message["burst"]] == ["s1:M0", "s1:M1"]


def test_a_lone_message_is_handed_on_as_it_is(client, bursts, redis_db):
    post(client, received("M0", "hello"))
    assert bursts.move_due(time.time() + WINDOW + 0.1) == 1
    [message] = tasks(redis_db)
    assert message["id"] == "s1:M0" and message["text"] == "hello" and "burst" not in message


def test_two_senders_have_two_bursts(client, bursts, redis_db):
    post(client, received("A0", "a", sender="5511911111111"))
    post(client, received("B0", "b", sender="5511922222222"))
    post(client, received("A1", "a2", sender="5511911111111"))
    assert bursts.move_due(time.time() + WINDOW + 0.1) == 2
    texts = sorted(message["text"] for message in tasks(redis_db))
    assert texts == ["a\na2", "b"]


def test_media_joins_the_burst_with_its_caption_and_flags(client, bursts, redis_db):
    post(client, received("M0", "look"))
    post(client, received("M1", None, type="image", hasMedia=True, caption="my order",
                          fileName="p.jpg"))
    assert bursts.move_due(time.time() + WINDOW + 0.1) == 1
    [message] = tasks(redis_db)
    assert message["text"] == "look\nmy order"
    assert [(p["type"], p["has_media"]) for p in message["burst"]] == [("text", False),
                                                                       ("image", True)]


def test_an_unsupported_type_ends_the_burst_and_is_handed_on_alone_behind_it(
        client, bursts, redis_db):
    post(client, received("M0", "hi"))
    post(client, received("M1", "there"))
    post(client, received("M2", None, type="unsupported"))
    post(client, received("M3", "after"))
    # The burst closed at once; the sticker waits behind it, the next message opened another.
    assert bursts.move_due(time.time()) == 2
    first, second = tasks(redis_db)
    assert [p["id"] for p in first["burst"]] == ["s1:M0", "s1:M1"]
    assert second["id"] == "s1:M2" and "burst" not in second
    assert bursts.move_due(time.time() + WINDOW + 0.1) == 1
    assert tasks(redis_db)[2]["id"] == "s1:M3"


def test_a_group_message_with_nothing_waiting_is_handed_on_at_once(client, bursts, redis_db):
    post(client, received("G0", "all", isGroup=True, groupId="120363@g.us"))
    assert [message["id"] for message in tasks(redis_db)] == ["s1:G0"]
    assert bursts.waiting() == 0


def test_the_cap_closes_a_burst_that_keeps_going(bursts, redis_db):
    intake = Services(SETTINGS, KombuRedisLayout(celery_app)).intake
    start = time.time()
    # Messages 1 s apart (inside the 1.5 s window) past the 4 s cap: the cap closes the
    # first burst at start + 4, and the message sent then opens the next.
    for step in range(6):
        intake.clock = lambda step=step: start + step
        assert intake.accept(parse_event(received(f"M{step}", str(step)))) == "accepted"
    due = redis_db.zscore(keys.BURSTS_DUE, keys.burst_sender("s1", "5511988887777"))
    assert due == pytest.approx(start + 4)
    assert bursts.move_due(start + 4.01) == 1
    assert [p["id"] for p in tasks(redis_db)[0]["burst"]] == [f"s1:M{n}" for n in range(4)]
    assert bursts.move_due(start + 5 + WINDOW - 0.01) == 0
    assert bursts.move_due(start + 5 + WINDOW + 0.01) == 1
    assert [p["id"] for p in tasks(redis_db)[1]["burst"]] == ["s1:M4", "s1:M5"]


def test_a_cap_below_the_window_is_refused_naming_the_variable():
    with pytest.raises(ConfigError, match="ZAPA_INBOUND_COALESCE_MAX"):
        load_settings(ZAPA_INBOUND_COALESCE="5", ZAPA_INBOUND_COALESCE_MAX="2")


def test_off_by_default_hands_each_message_on_at_once(redis_db):
    client = create_app({"TESTING": True}).test_client()
    post(client, received("M0", "hi"))
    post(client, received("M1", "there"))
    assert [message["id"] for message in tasks(redis_db)] == ["s1:M0", "s1:M1"]
    assert redis_db.zcard(keys.BURSTS_DUE) == 0


def test_two_movers_racing_for_one_burst_hand_it_on_once(client, bursts, redis_db):
    post(client, received("M0", "hi"))
    post(client, received("M1", "there"))
    other = Services(SETTINGS, KombuRedisLayout(celery_app)).bursts
    later = time.time() + WINDOW + 0.1
    member = keys.burst_sender("s1", "5511988887777")
    read = redis_db.lrange(keys.burst("s1", "5511988887777"), 0, -1)
    assert len(read) == 2
    assert bursts._hand_on_oldest(member, later) == 1
    # The other worker read the same burst before the first handed it on: its step, with
    # what it read, finds the burst gone and pushes nothing.
    stale = other._hand_on(
        keys=[keys.BURSTS_DUE, keys.burst("s1", "5511988887777"),
              keys.burst_state("s1", "5511988887777"), INBOUND_QUEUE, keys.METRICS_COUNTERS],
        args=[member, repr(later), "s1:M0", 2, "stale task", "1", BURSTS_COUNTER,
              COALESCED_COUNTER])
    assert stale == 0
    assert other.move_due(later) == 0
    assert len(tasks(redis_db)) == 1
