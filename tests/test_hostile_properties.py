"""Generated bodies and headers at the two edges that take data from outside, the webhook
and the admin send route: no answer is ever a 5xx, and nothing answered 2xx vanishes (an
accepted message is recorded and its inbound task run by a real worker, an accepted receipt
is counted where the intake applied it, a session event ends handled by the worker or as an
inbound dead letter; a queued send has its record). A fixed example budget keeps the run
short and the same every time."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import wait_until
from workers.tasks import services
from zapa_bridge.inbound.events import (
    KNOWN_EVENTS,
    MESSAGE_RECEIVED,
    SESSION_EVENTS,
    STATUS_EVENTS,
)
from zapa_bridge.queues import Queue
from zapa_bridge.web import create_app, throttle

pytestmark = pytest.mark.slow

WEBHOOK = "/api/v1/webhooks/whatsapp"
SEND = "/api/v1/integration/messages"
TOKEN = os.environ["ZAPA_WEBHOOK_TOKEN"]
ADMIN = {"Authorization": "Bearer " + os.environ["ZAPA_ADMIN_TOKEN"]}
BUDGET = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HANDLED = re.compile(r"Task zapa\.handle_event\[([0-9a-f-]+)\] succeeded")
ECHOED = re.compile(r"Task zapa\.echo\[([0-9a-f-]+)\] succeeded")

# Any text, lone surrogates and control characters included.
any_text = st.text(st.characters(codec=None, categories=None), max_size=12)
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | any_text
           | st.integers(min_value=10**30, max_value=10**60))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(any_text, inner, max_size=3), max_leaves=12)
message_data = st.fixed_dictionaries({}, optional={
    "messageId": st.uuids().map(str) | st.uuids().map(str) | any_text | st.integers(),
    "from": st.sampled_from(["5511988887777@s.whatsapp.net", "x@g.us"]) | any_text,
    "type": st.sampled_from(["text", "image", "reaction"]) | any_text,
    "text": any_text, "status": any_text | st.integers(), "extra": json_values,
})
# Mostly well-formed envelopes with odd contents, so most examples reach the worker.
usual = st.sampled_from(["s1", "s2"])
known = st.sampled_from(sorted(KNOWN_EVENTS))
envelopes = st.fixed_dictionaries({
    "sessionId": usual | usual | usual | any_text | st.integers() | json_values,
    "eventType": known | known | known | any_text,
    "data": message_data | message_data | message_data | json_values,
}, optional={"timestamp": st.integers() | st.floats() | any_text,
             "origin": json_values})
deep = st.integers(min_value=1, max_value=3000).map(lambda levels: "[" * levels + "]" * levels)
webhook_bodies = (envelopes.map(json.dumps) | envelopes.map(json.dumps)
                  | envelopes.map(json.dumps) | json_values.map(json.dumps) | deep
                  | st.binary(max_size=64))
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
send_bodies = st.fixed_dictionaries({}, optional={
    "to": st.sampled_from(["5511988887777", "+5511988887777"]) | any_text | st.integers(),
    "text": st.just("hello") | any_text | json_values,
    "type": st.sampled_from(["text", "image", "location", "contact"]) | any_text,
    "session": st.sampled_from(["s1", ".", "..", "a/b"]) | any_text,
    "priority": st.sampled_from(["high", "default", "low"]) | any_text | st.integers(),
    "expires_at": st.integers() | st.floats() | any_text
    | st.integers(min_value=10**300, max_value=10**400),
    "media_url": st.sampled_from(["http://[", "https://example.com/a.png"]) | any_text,
    "latitude": st.floats() | st.integers(min_value=10**300, max_value=10**400),
    "longitude": st.floats(),
    "default_session": any_text, "max_body_bytes": st.integers(),
    "idempotency_key": any_text,
    "extra": json_values,
})


@pytest.fixture
def client(redis_db: Any) -> FlaskClient:
    app = create_app({"TESTING": True})
    # Wrong tokens are among the examples; the throttle is tested on its own.
    app.extensions["zapa_throttle"] = throttle.FailureThrottle(redis_db, limit=10**9)
    return app.test_client()


def test_no_webhook_body_gets_a_5xx_and_no_accepted_event_vanishes(client, start_worker,
                                                                    redis_db):
    accepted: Counter[str] = Counter()

    @BUDGET
    @given(body=webhook_bodies, event_header=header_text,
           content_type=st.sampled_from(["application/json", "text/plain", ""]),
           token=st.sampled_from([TOKEN, TOKEN, TOKEN, "guess", ""]))
    def post(body: str | bytes, event_header: str, content_type: str, token: str) -> None:
        nonlocal accepted
        answer = client.post(WEBHOOK, data=body, query_string={"token": token} if token else None,
                             headers={"Content-Type": content_type,
                                      "X-Webhook-Event": event_header})
        assert answer.status_code < 500, (answer.status_code, answer.get_data()[:300])
        assert answer.is_json
        if answer.status_code == 200 and answer.json["status"] == "accepted":
            accepted[json.loads(body)["eventType"]] += 1

    post()
    assert accepted.total() > 5  # the examples reach the intake, not only the edge's refusals
    messages = accepted[MESSAGE_RECEIVED]
    tasks = sum(count for event, count in accepted.items() if event in SESSION_EVENTS)
    # Receipts are applied (or kept) by the intake itself, each counted there.
    stats = services().intake.stats()
    assert {event: stats.get(f"{event}:accepted", 0) for event in STATUS_EVENTS} == {
        event: accepted[event] for event in STATUS_EVENTS}
    worker = start_worker()
    letters = services().inbound_dead_letters

    def every_event_ended() -> bool:
        log = worker.log()
        return (redis_db.llen(Queue.EVENTS) == 0
                and len(set(HANDLED.findall(log))) == tasks
                and len(set(ECHOED.findall(log))) == messages)

    wait_until(every_event_ended, timeout=60,
               what=f"{tasks} events handled and {messages} messages handed on")
    assert "Traceback" not in worker.log()
    # Each dead letter is one of the handled events, kept where an operator sees it.
    assert letters.count() <= tasks


def test_no_send_body_gets_a_5xx_and_every_queued_send_has_its_record(client):
    @BUDGET
    @given(body=send_bodies.map(json.dumps) | json_values.map(json.dumps) | deep
           | st.binary(max_size=64),
           idempotency_key=st.none() | header_text)
    def post(body: str | bytes, idempotency_key: str | None) -> None:
        headers = {**ADMIN, "Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        answer = client.post(SEND, data=body, headers=headers)
        assert answer.status_code < 500, (answer.status_code, answer.get_data()[:300])
        assert answer.is_json
        if answer.status_code == 202:
            assert services().store.get(answer.json["id"]) is not None

    post()
