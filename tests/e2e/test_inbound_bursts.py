"""Inbound bursts through the whole system, ZAPA_INBOUND_COALESCE on in the web and the
worker: a sender's messages posted by zapw within the window reach the inbound task as one
task, once, when zapw posts each webhook twice, and when the only worker is SIGKILLed while
the burst is open.

Where the task is Zapa's (`zapa_ai.reply`, not one of ours), our workers do not consume
ZAPA_INBOUND_QUEUE: the tasks handed on stay there for the test to read, as Zapa's workers
would take them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.stack import Stack
from tests.e2e.test_webhook_redelivery import FailFirstAttemptProxy
from tests.helpers import task_kwargs, wait_until
from tests.processes import Worker
from workers.tasks import services
from zapa_bridge.inbound.bursts import BURSTS_COUNTER, COALESCED_COUNTER
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

SENDER = "5511988887777"
ZAPAS_TASK = "zapa_ai.reply"
INBOUND_QUEUE = "zapa.inbound"
WINDOW = 1.0


def say(e2e: Stack, **fields: Any) -> str:
    """One message from SENDER on session A, once the web has taken its webhook in (so the
    messages of a burst arrive in the order they are written); its inbound id."""
    event = e2e.sim.inject_inbound("A", sender=SENDER, **fields)
    wait_until(lambda: any(d.event == event and d.outcome == "delivered"
                           for d in e2e.sim.webhook_deliveries("message.received")),
               what="message.received delivered")
    return f"A:{event['data']['messageId']}"


def handed_on() -> list[dict[str, Any]]:
    """The `message` keyword of every task waiting for Zapa's workers, oldest first."""
    queued = services().redis.lrange(INBOUND_QUEUE, 0, -1)
    return [task_kwargs(json.loads(raw))["message"] for raw in reversed(queued)]


def counters() -> tuple[int, int]:
    counts = services().redis.hgetall(keys.METRICS_COUNTERS)
    return int(counts.get(BURSTS_COUNTER, 0)), int(counts.get(COALESCED_COUNTER, 0))


@pytest.mark.stack_env(ZAPA_INBOUND_COALESCE=str(WINDOW), ZAPA_INBOUND_TASK=ZAPAS_TASK)
def test_three_messages_within_the_window_are_one_task_with_all_three_in_order(e2e: Stack):
    ids = [say(e2e, text="hi"), say(e2e, text="I need"),
           say(e2e, type="image", caption="help with my order", file_name="order.jpg")]

    [message] = wait_until(handed_on, timeout=WINDOW + 10, what="the burst handed on")
    assert message["id"] == ids[-1]
    assert [part["id"] for part in message["burst"]] == ids
    assert [(part["type"], part["has_media"]) for part in message["burst"]] == [
        ("text", False), ("text", False), ("image", True)]
    assert message["text"] == "hi\nI need\nhelp with my order"
    wait_until(lambda: services().bursts.waiting() == 0, what="nothing left waiting")
    assert len(handed_on()) == 1
    assert counters() == (1, 3)
    # Each message is recorded as handed on to Zapa's task.
    assert [services().inbound.get(inbound_id)["routed_to"] for inbound_id in ids] == [
        ZAPAS_TASK] * 3


@pytest.mark.stack_env(ZAPA_INBOUND_COALESCE=str(WINDOW), ZAPA_INBOUND_TASK=ZAPAS_TASK)
def test_a_burst_whose_webhooks_each_came_twice_is_one_task_with_each_message_once(
        e2e: Stack):
    with FailFirstAttemptProxy(e2e.web.url) as proxy:
        e2e.sim.configure(webhook_url=e2e.webhook_url.replace(e2e.web.url, proxy.url))
        ids = [say(e2e, text="hi"), say(e2e, text="I need"),
               say(e2e, text="help with my order")]
        [message] = wait_until(handed_on, timeout=WINDOW + 10, what="the burst handed on")
        assert [f.web_answer["status"] for f in proxy.forwarded("message.received")] == [
            "accepted", "duplicate"] * 3

    assert [part["id"] for part in message["burst"]] == ids
    assert message["text"] == "hi\nI need\nhelp with my order"
    wait_until(lambda: services().bursts.waiting() == 0, what="nothing left waiting")
    assert len(handed_on()) == 1
    assert counters() == (1, 3)


@pytest.mark.stack_env(ZAPA_INBOUND_COALESCE="0.5")
def test_two_bursts_further_apart_than_the_window_get_two_echo_replies(e2e: Stack):
    say(e2e, text="hi")
    say(e2e, text="I need")
    (first,) = e2e.wait_sends(1, "A")  # the first burst closed: the window went by
    say(e2e, text="help with")
    say(e2e, text="my order")
    second = e2e.wait_sends(2, "A")[1]

    assert first.body == {"to": SENDER, "type": "text",
                          "text": "echo: 2 messages as one turn\nhi\nI need"}
    assert second.body == {"to": SENDER, "type": "text",
                           "text": "echo: 2 messages as one turn\nhelp with\nmy order"}
    wait_until(lambda: services().bursts.waiting() == 0, what="nothing left waiting")
    assert len(e2e.sim.sends()) == 2
    assert counters() == (2, 4)


@pytest.mark.stack_env(ZAPA_INBOUND_COALESCE=str(WINDOW), ZAPA_INBOUND_TASK=ZAPAS_TASK)
def test_a_burst_spanning_a_worker_sigkill_is_handed_on_once_by_the_next_worker(
        e2e: Stack, start_worker: Callable[..., Worker]):
    ids = [say(e2e, text="hi"), say(e2e, text="I need")]
    e2e.worker.kill()  # the only worker, its due mover with it, while the burst is open
    ids.append(say(e2e, text="help with my order"))

    member = keys.burst_sender("A", SENDER)
    due = wait_until(lambda: services().redis.zscore(keys.BURSTS_DUE, member),
                     what="the burst due")
    wait_until(lambda: time.time() > due + 0.2, timeout=WINDOW + 5, what="the burst closed")
    assert handed_on() == []  # closed, and no mover alive to hand it on
    assert services().bursts.waiting() == 1

    start_worker(**e2e.worker.env)
    [message] = wait_until(handed_on, timeout=20, what="the burst handed on by the new worker")
    assert [part["id"] for part in message["burst"]] == ids
    assert message["text"] == "hi\nI need\nhelp with my order"
    time.sleep(0.5)  # ten rounds of the new worker's mover later, still once
    assert len(handed_on()) == 1
    assert services().bursts.waiting() == 0
    assert services().redis.exists(keys.burst("A", SENDER)) == 0
    assert counters() == (1, 3)
