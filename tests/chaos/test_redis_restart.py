"""Chaos: Redis, run with AOF on as the docs tell production to, restarts mid-run while a
service keeps enqueuing over the HTTP API. Every message the API accepted is sent, and the
worker and beat ride it out: no process of the stack exits."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.http_producer import GIVE_UP, RATE, HttpProducer
from tests.chaos.ledger import Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack
from tests.helpers import wait_until
from zapa_bridge.devtools.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.slow

MESSAGES = 400
DOWN = 2.0  # s between Redis stopping and starting again


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
