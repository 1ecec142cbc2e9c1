"""Hostile bodies and guessed tokens at the webhook: each is refused with a 4xx naming what
is wrong, none reaches the worker to be lost there, none grows Redis or /metrics without
bound, and a guesser is throttled."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_until
from zapa_bridge.config import load_settings
from zapa_bridge.inbound.events import MAX_MESSAGE_ID, MAX_NESTING, OTHER_EVENTS
from zapa_bridge.ops.metrics import MAX_LABEL_VALUES, OTHER_LABEL, bounded_by_label
from zapa_bridge.session_ids import MAX_SESSION_ID_CHARS
from zapa_bridge.store import keys
from zapa_bridge.web import create_app, throttle

PATH = "/api/v1/webhooks/whatsapp"
TOKEN = os.environ["ZAPA_WEBHOOK_TOKEN"]
EVENTS_QUEUE = "zapa.events"


def received(**data: Any) -> dict[str, Any]:
    return {"sessionId": "s1", "eventType": "message.received", "timestamp": 1795599514484,
            "data": {"from": "5511988887777@s.whatsapp.net", "messageId": "3EB0AAAA1111",
                     "type": "text", "text": "hi", **data}}


@pytest.fixture
def app(redis_db: Any) -> Flask:
    return create_app({"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, body: bytes | dict[str, Any], token: str = TOKEN) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(PATH, data=raw, query_string={"token": token},
                       headers={"Content-Type": "application/json"})


def taken_in(redis_db: Any) -> int:
    """How many events were taken in: queued for `handle_event`, or (a message) handed on."""
    return redis_db.llen(EVENTS_QUEUE) + redis_db.llen(load_settings().inbound_queue)


def nested(levels: int) -> bytes:
    """An event whose `data.extra` makes the whole body `levels` deep."""
    inner = "[" * (levels - 2) + "]" * (levels - 2)
    return (json.dumps(received())[:-2] + ', "extra": ' + inner + "}}").encode()


# -- nesting and odd strings (finding 2) ---------------------------------------------------

def test_nesting_up_to_the_cap_is_accepted(client, redis_db):
    answer = post(client, nested(MAX_NESTING))
    assert (answer.status_code, answer.json) == (200, {"status": "accepted"})
    assert taken_in(redis_db) == 1


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 970, 985, 20_000])
def test_deeper_nesting_is_400_and_never_queued(client, redis_db, levels):
    answer = post(client, nested(levels))
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "too_deep"
    assert taken_in(redis_db) == 0


@pytest.mark.parametrize(("body", "field"), [
    ('{"sessionId": "\\ud800", "eventType": "message.received", "data": {}}', "sessionId"),
    ('{"sessionId": "s1", "eventType": "message.\\udfff", "data": {}}', "eventType"),
    ('{"sessionId": "s1", "eventType": "message.sent", "data": {"messageId": "a\\ud83d"}}',
     "data.messageId"),
    ('{"sessionId": "s1", "eventType": "message.received", "data": {"type": "\\ud800"}}',
     "data.type"),
    ('{"sessionId": "s1", "eventType": "message.received", "data": {"\\ud800k": 1}}',
     "data.?k"),
])
def test_a_lone_surrogate_is_422_naming_the_field(client, redis_db, body, field):
    answer = post(client, body.encode())
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == field
    assert taken_in(redis_db) == 0


def test_bytes_that_are_not_utf8_are_400(client):
    answer = post(client, b'{"sessionId": "s1\xff", "eventType": "x", "data": {}}')
    assert answer.status_code == 400


# -- ids and labels (finding 3) -------------------------------------------------------------

@pytest.mark.parametrize(("session", "message_id", "field"), [
    ("s" * (MAX_SESSION_ID_CHARS + 1), "m1", "sessionId"),
    ("..", "m1", "sessionId"),
    ("a/b", "m1", "sessionId"),
    ("s1", "m" * (MAX_MESSAGE_ID + 1), "data.messageId"),
])
def test_oversized_or_path_like_ids_are_422(client, redis_db, session, message_id, field):
    event = {**received(messageId=message_id), "sessionId": session}
    answer = post(client, event)
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == field
    assert taken_in(redis_db) == 0


def test_ids_at_their_limits_are_accepted(client, redis_db):
    event = {**received(messageId="m" * MAX_MESSAGE_ID), "sessionId": "s" * MAX_SESSION_ID_CHARS}
    assert post(client, event).status_code == 200


def test_unknown_event_types_are_counted_under_one_label(client, redis_db):
    for number in range(40):
        event = {"sessionId": "s1", "eventType": f"made.up.{number}", "data": {}}
        assert post(client, event).json == {"status": "ignored"}
    assert redis_db.hgetall(keys.WEBHOOK_STATS) == {f"{OTHER_EVENTS}:ignored": "40"}
    labels = webhook_labels(client)
    assert labels == {(OTHER_EVENTS, "ignored")}


def test_types_counted_by_name_before_the_label_existed_are_folded_in(client, redis_db):
    redis_db.hset(keys.WEBHOOK_STATS, mapping={"chats.update:ignored": 3,
                                                "other:ignored": 2,
                                                "message.sent:accepted": 5})
    assert webhook_labels(client) == {(OTHER_EVENTS, "ignored"), ("message.sent", "accepted")}


def webhook_labels(client: FlaskClient) -> set[tuple[str, str]]:
    text = client.get("/metrics").get_data(as_text=True)
    [family] = [family for family in text_string_to_metric_families(text)
                if family.name == "zapa_webhooks"]
    return {(sample.labels["event_type"], sample.labels["outcome"])
            for sample in family.samples if sample.name == "zapa_webhooks_total"}


def test_a_label_taken_from_data_keeps_its_largest_values():
    counts = {f"session-{number}": number for number in range(MAX_LABEL_VALUES + 50)}
    bounded = bounded_by_label(counts)
    assert len(bounded) == MAX_LABEL_VALUES
    assert sum(bounded.values()) == sum(counts.values())
    assert f"session-{MAX_LABEL_VALUES + 49}" in bounded and "session-0" not in bounded
    assert OTHER_LABEL in bounded


# -- guessed tokens (finding 4) -------------------------------------------------------------

def test_wrong_tokens_are_throttled_even_for_the_right_one(client, redis_db, caplog):
    for _ in range(throttle.FAILURES_ALLOWED):
        assert post(client, received(), token="guess").status_code == 401
    refused = post(client, received(), token="guess")
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= throttle.WINDOW_SECONDS
    assert post(client, received()).status_code == 429  # right token, while blocked
    assert taken_in(redis_db) == 0
    assert any("event=auth.throttled" in message and "scope=webhook" in message
               for message in caplog.messages)
    assert TOKEN not in caplog.text


def test_a_webhook_throttle_does_not_lock_the_operators_out(client):
    for _ in range(throttle.FAILURES_ALLOWED + 1):
        post(client, received(), token="guess")
    signed_in = client.post("/admin/login", data={"token": os.environ["ZAPA_ADMIN_TOKEN"]})
    assert signed_in.status_code == 302


def test_the_block_ends_with_its_window(redis_db):
    short = throttle.FailureThrottle(redis_db, limit=2, window=1)
    assert short.failed(throttle.WEBHOOK, "198.51.100.7") is None
    assert short.failed(throttle.WEBHOOK, "198.51.100.7") is None
    assert short.blocked(throttle.WEBHOOK, "198.51.100.7") == 1
    assert short.blocked(throttle.WEBHOOK, "198.51.100.8") is None
    wait_until(lambda: short.blocked(throttle.WEBHOOK, "198.51.100.7") is None, timeout=3)
    assert redis_db.exists(keys.auth_failures(throttle.WEBHOOK, "198.51.100.7")) == 0


# -- the token before the body (finding 1) ---------------------------------------------------

def test_a_wrong_url_token_is_refused_before_the_body_arrives(start_web):
    web = start_web()
    with socket.create_connection(("127.0.0.1", web.port), timeout=5) as connection:
        connection.sendall((f"POST {PATH}?token=guess HTTP/1.1\r\nHost: x\r\n"
                            "Content-Type: application/json\r\nContent-Length: 50000\r\n\r\n"
                            "{").encode())
        started = time.monotonic()
        head = connection.recv(200)
        waited = time.monotonic() - started
    assert head.startswith(b"HTTP/1.1 401"), head
    assert waited < 3


def test_production_refuses_a_short_webhook_token(redis_db):
    from zapa_bridge.errors import ConfigError

    settings = load_settings(ZAPA_ENV="production", ZAPA_WEBHOOK_TOKEN="short",
                             ZAPA_ADMIN_TOKEN="a" * 40, ZAPA_PUBLIC_URL="https://zapa.example")
    with pytest.raises(ConfigError) as raised:
        create_app({"TESTING": True, "SETTINGS": settings})
    assert list(raised.value.problems) == ["ZAPA_WEBHOOK_TOKEN"]
    assert "32 characters" in raised.value.problems["ZAPA_WEBHOOK_TOKEN"]


def test_behind_a_trusted_proxy_failures_are_counted_by_the_forwarded_address(redis_db):
    settings = load_settings(ZAPA_TRUSTED_PROXIES="1")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    for _ in range(throttle.FAILURES_ALLOWED + 1):
        answer = client.post(PATH, json=received(), query_string={"token": "guess"},
                             headers={"X-Forwarded-For": "203.0.113.9"})
    assert answer.status_code == 429
    other = client.post(PATH, json=received(), query_string={"token": TOKEN},
                        headers={"X-Forwarded-For": "203.0.113.10"})
    assert other.status_code == 200
    assert redis_db.exists(keys.auth_failures(throttle.WEBHOOK, "203.0.113.9")) == 1


def test_without_a_trusted_proxy_a_forwarded_address_is_not_believed(client, redis_db):
    for number in range(throttle.FAILURES_ALLOWED + 1):
        answer = client.post(PATH, json=received(), query_string={"token": "guess"},
                             headers={"X-Forwarded-For": f"203.0.113.{number}"})
    assert answer.status_code == 429
    assert redis_db.exists(keys.auth_failures(throttle.WEBHOOK, "127.0.0.1")) == 1
