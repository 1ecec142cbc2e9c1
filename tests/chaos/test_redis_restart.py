"""Chaos: Redis, run with AOF on as the docs tell production to, restarts mid-run while a
service keeps enqueuing over the HTTP API. Every message the API accepted is sent, and the
worker and beat ride it out: no process of the stack exits."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import requests

from tests.chaos.ledger import Conversation, Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack
from tests.helpers import wait_until
from zapa_bridge.devtools.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.slow

MESSAGES = 400
RATE = 50.0  # enqueued per second: the run spans the restart
DOWN = 2.0  # s between Redis stopping and starting again
GIVE_UP = 30.0  # s a producer keeps retrying one message


class HttpProducer(threading.Thread):
    """A service enqueuing through POST /api/v1/integration/messages, one message at a time
    in conversation order, retrying each with its Idempotency-Key until it is accepted."""

    def __init__(self, base_url: str, plan: Sequence[tuple[Conversation, int]],
                 ledger: Ledger) -> None:
        super().__init__(daemon=True, name="http-producer")
        self.url = f"{base_url}/api/v1/integration/messages"
        self.plan = plan
        self.ledger = ledger
        self.refused = 0  # answers other than 202, and requests that got no answer
        self.gave_up: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            self.error = exc

    def _produce(self) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {os.environ['ZAPA_ADMIN_TOKEN']}"
        started = time.monotonic()
        for k, (conversation, index) in enumerate(self.plan):
            time.sleep(max(0.0, started + k / RATE - time.monotonic()))  # a steady pace
            body = {"to": conversation.to, "text": conversation.text(index),
                    "session": conversation.session}
            key = f"chaos:{conversation.text(index)}"
            deadline = time.monotonic() + GIVE_UP
            while True:
                try:
                    answer = http.post(self.url, json=body, headers={"Idempotency-Key": key},
                                       timeout=15)
                    if answer.status_code == 202:
                        self.ledger.add(conversation, index, answer.json()["id"])
                        break
                except requests.RequestException:
                    pass
                self.refused += 1
                if time.monotonic() > deadline:
                    self.gave_up.append(conversation.text(index))
                    break
                time.sleep(0.1)


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, with AOF on; requested before `chaos`, so it outlives the
    stack's processes."""
    (tmp_path / "redis").mkdir()
    with EmbeddedRedis(persistent=True, directory=str(tmp_path / "redis")) as server:
        yield server


def test_redis_restarted_mid_run_with_aof_loses_no_accepted_message(
        aof_redis: EmbeddedRedis, chaos: Callable[..., ChaosStack],
        request: pytest.FixtureRequest) -> None:
    stack = chaos(redis_url=aof_redis.url)
    ledger = Ledger()
    plan = list(round_robin(conversations(20, ("A", "B")), 0, MESSAGES))
    producer = HttpProducer(stack.web.url, plan, ledger)
    started = time.monotonic()
    producer.start()
    wait_until(lambda: len(ledger) >= 100 and len(stack.sim.sends()) >= 50, timeout=30,
               what="the run under way")
    sent_before = len(stack.sim.sends())
    aof_redis.stop()
    time.sleep(DOWN)  # the outage itself
    aof_redis.start()
    producer.join(timeout=MESSAGES / RATE + GIVE_UP + 30)
    assert producer.error is None, producer.error

    settled = stack.settle(ledger, timeout=60)
    seconds = time.monotonic() - started
    tally = Tally.of(ledger.items(), stack.sim.sends())

    verdict = Verdict()
    verdict.expect(settled and not tally.lost, "0 lost")
    verdict.expect(not producer.gave_up, "every message accepted by the API in the end")
    verdict.expect(sent_before < len(plan), "the restart came mid-run")
    # The stack's supervisor restarts whatever exits; the worker and beat must not need it.
    exits = Counter(stack.restarts)
    verdict.expect(not exits, "no process exited")
    report(request, "redis-restart", tally, seconds=seconds, verdict=verdict,
           notes=f"down {DOWN:.0f} s after {sent_before} sends; "
                 f"{producer.refused} API calls retried; processes restarted: "
                 + (", ".join(f"{name} x{n}" for name, n in sorted(exits.items())) or "0"))
    verdict.enforce()
