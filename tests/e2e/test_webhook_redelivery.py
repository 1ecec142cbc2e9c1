"""zapw retries a webhook it got no 2xx for, so an event can arrive twice; it is handled once.

A small proxy between the simulator and the web process forwards every post, then answers
500 to the first attempt of each event: the web has accepted it, but zapw, seeing a failure,
delivers the same event again, as it does after a lost answer or a slow one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from tests.e2e.conftest import FIXED_ZAPW
from tests.e2e.stack import S, Stack
from tests.helpers import ServedApp, wait_until
from workers.tasks import services
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

SENDER = "5511988887777"


@dataclass(frozen=True)
class Forwarded:
    event_type: str
    web_status: int
    web_answer: dict[str, Any]
    answered: int  # what the proxy told zapw


class FailFirstAttemptProxy(ServedApp):
    """Forwards webhooks to `target`; answers 500 to the first attempt of each event body."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._seen: set[bytes] = set()
        self._forwarded: list[Forwarded] = []
        super().__init__()
        self.url = self.base_url

    def forwarded(self, event_type: str) -> list[Forwarded]:
        with self._lock:
            return [f for f in self._forwarded if f.event_type == event_type]

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        event_type = request.headers.get("X-Webhook-Event", "")
        with requests.post(f"{self.target}{request.full_path}", data=body, timeout=10,
                           headers={"Content-Type": "application/json",
                                    "X-Webhook-Event": event_type}) as answer:
            status, answer_body = answer.status_code, answer.json()
        with self._lock:
            first = body not in self._seen
            self._seen.add(body)
            answered = 500 if first else status
            self._forwarded.append(Forwarded(event_type, status, answer_body, answered))
        return Response(status=answered)(environ, start_response)


@pytest.fixture
def proxy(e2e: Stack) -> Iterator[FailFirstAttemptProxy]:
    with FailFirstAttemptProxy(e2e.web.url) as running:
        e2e.sim.configure(webhook_url=e2e.webhook_url.replace(e2e.web.url, running.url))
        yield running
        e2e.sim.configure(webhook_url=e2e.webhook_url)


@pytest.mark.sim_config(**FIXED_ZAPW)
def test_inbound_webhook_delivered_twice_is_recorded_and_echoed_once(
        e2e: Stack, proxy: FailFirstAttemptProxy):
    event = e2e.sim.inject_inbound("A", sender=SENDER, text="only once")
    inbound_id = f"A:{event['data']['messageId']}"

    attempts = wait_until(lambda: (d := e2e.sim.webhook_deliveries("message.received"))
                          and d[-1].outcome == "delivered" and d,
                          what="message.received delivered after a retry")
    assert [(d.attempt, d.status_code) for d in attempts] == [(1, 500), (2, 200)]
    assert attempts[0].event == attempts[1].event
    assert [(f.web_status, f.web_answer) for f in proxy.forwarded("message.received")] == [
        (200, {"status": "accepted"}), (200, {"status": "duplicate"})]

    (reply,) = e2e.wait_sends(1, "A")
    assert reply.body == {"to": SENDER, "type": "text", "text": "echo: only once"}
    message_id = services().store.find_by_bridge_id("A", reply.message_id)
    e2e.wait_status(message_id, S.READ)
    assert [entry["message"]["id"] for entry in services().inbound.recent()] == [inbound_id]
    assert services().redis.hget(keys.WEBHOOK_STATS, "message.received:duplicate") == "1"
    assert len(e2e.sim.sends()) == 1
