"""Events zapw never posted are recovered from its GET /events list, the whole system running
with a beat polling that list: with webhooks off every inbound message is still handled, and
with webhooks on the poll handles nothing twice.

zapw runs in its mock flavour here, which posts no receipt after a send: the echo replies add
nothing to zapw's 10-event list, so the inbound messages stay in it for the poll to see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.stack import Stack
from tests.helpers import wait_until
from tests.processes import Beat
from tests.simulator.support import holds
from workers.tasks import health_checker, services
from zapa_bridge.inbound.recovery import DONE, NOT_POSTING, recovered_counts
from zapa_bridge.ops.health import Health
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

SENDER = "5511988887777"
POLL_INTERVAL = "0.5"
TEXTS = [f"message {n}" for n in range(10)]


def inject_all(stack: Stack) -> list[str]:
    return [stack.sim.inject_inbound("A", sender=SENDER, text=text)["data"]["messageId"]
            for text in TEXTS]


def webhooks_component() -> Any:
    return health_checker().run().components["webhooks"]


@pytest.mark.sim_config(flavour="mock")
@pytest.mark.worker_env(ZAPA_EVENTS_GRACE="0.5")
def test_with_webhooks_off_ten_inbound_messages_are_handled_by_recovery(
        e2e: Stack, start_beat: Callable[..., Beat]):
    e2e.sim.configure(webhooks_enabled=False)  # as zapw with ENABLE_WEBHOOK unset
    start_beat(ZAPA_EVENTS_POLL_INTERVAL=POLL_INTERVAL)
    inject_all(e2e)
    e2e.wait_sends(10, "A", timeout=30)
    assert e2e.sent_texts("A") == Counter({f"echo: {text}": 1 for text in TEXTS})
    assert e2e.sim.webhook_deliveries("message.received") == []
    assert recovered_counts(services().redis) == {"A": 10}
    component = webhooks_component()
    assert (component.status, component.message) == (Health.DEGRADED, NOT_POSTING)


@pytest.mark.sim_config(flavour="mock")
@pytest.mark.worker_env(ZAPA_EVENTS_GRACE="1")
def test_with_webhooks_on_recovery_handles_nothing_twice(e2e: Stack,
                                                         start_beat: Callable[..., Beat]):
    start_beat(ZAPA_EVENTS_POLL_INTERVAL=POLL_INTERVAL)
    inject_all(e2e)
    e2e.wait_sends(10, "A", timeout=30)
    # Every message of zapw's list checked by the poll, each found delivered.
    wait_until(lambda: list(services().redis.hgetall(keys.EVENTS_SIGHTINGS).values())
               == [DONE] * 10, timeout=15, what="the ten events checked by the poll")
    holds(lambda: len(e2e.sim.sends("A")) == 10, 1.0, "ten replies, no more")
    assert e2e.sent_texts("A") == Counter({f"echo: {text}": 1 for text in TEXTS})
    assert recovered_counts(services().redis) == {}
    component = webhooks_component()
    assert (component.status, component.message) == (Health.HEALTHY, "webhooks arriving")
