"""Chaos at the shipped defaults (no compressed timeouts: a 60 s visibility timeout, 120 s
lost-after, 10 s liveness, reconciliation every 30 s): a worker SIGKILLed mid-burst costs
seconds. Every message is sent, only sends in flight at a kill are repeated, order holds,
and no message waits more than `RECOVERY_LIMIT` s after the kill that delayed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from tests.chaos.ledger import Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack
from tests.helpers import wait_until
from workers.tasks import send_message
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.simulator.state import SentMessage

pytestmark = pytest.mark.slow

MESSAGES = 500
CONVERSATIONS = 50
KILL_AFTER_SENT = (120, 300)
RECOVERY_LIMIT = 30.0  # s from a kill to the last message it delayed being sent

# The settings a user ships, over the suite's compressed ones (rate limit off, as measured).
SHIPPED = {
    "ZAPA_RETRY_BACKOFF": "2", "ZAPA_RETRY_BACKOFF_MAX": "120", "ZAPA_MAX_RETRIES": "8",
    "ZAPW_TIMEOUT": "15", "ZAPW_CONNECT_TIMEOUT": "3.05", "ZAPA_VISIBILITY_TIMEOUT": "60",
    "ZAPA_UNACKED_RESTORE_INTERVAL": "5", "ZAPA_WORKER_CONCURRENCY": "8",
    "ZAPA_LOST_AFTER": "120", "ZAPA_WORKER_ALIVE_TTL": "10",
}


def slowest_after_kills(sends: Sequence[SentMessage], kills: Sequence[float],
                        texts: set[str]) -> float:
    """The longest time from a kill to the first send of a message first sent after it
    (and before the next kill): how long the kill delayed the slowest message."""
    first: dict[str, float] = {}
    for send in sends:
        text = send.body.get("text", "")
        if text in texts:
            first[text] = min(send.at, first.get(text, send.at))
    worst = 0.0
    for number, kill in enumerate(kills):
        until = kills[number + 1] if number + 1 < len(kills) else float("inf")
        worst = max([worst, *(at - kill for at in first.values() if kill < at <= until)])
    return worst


def enqueue_burst(ledger: Ledger) -> None:
    for conversation, index in round_robin(conversations(CONVERSATIONS, ("A", "B")), 0,
                                           MESSAGES):
        ledger.add(conversation, index, send_message.delay(
            to=conversation.to, text=conversation.text(index), session=conversation.session).id)


def judge(stack: ChaosStack, ledger: Ledger, in_flight: list[set[str]], kills: list[float],
          started: float, request: pytest.FixtureRequest, scenario: str) -> None:
    settled = stack.settle(ledger, timeout=3 * RECOVERY_LIMIT)
    tally = Tally.of(ledger.items(), stack.sim.sends())
    slowest = slowest_after_kills(stack.sim.sends(), kills, ledger.texts())
    verdict = Verdict()
    verdict.expect(settled and not tally.lost, "0 lost")
    verdict.expect(tally.duplicates <= sum(len(kill) for kill in in_flight),
                   "duplicates <= in flight at the kills")
    verdict.expect(tally.order_violations == 0, "0 order violations")
    verdict.expect(tally.strays == 0, "no stray sends")
    verdict.expect(slowest <= RECOVERY_LIMIT, f"slowest <= {RECOVERY_LIMIT:g} s after its kill")
    report(request, scenario, tally, seconds=time.monotonic() - started, verdict=verdict,
           notes=f"slowest {slowest:.1f} s after its kill; in flight at the kills: "
                 f"{', '.join(str(len(k)) for k in in_flight)}")
    verdict.enforce()


def test_only_worker_sigkilled_twice_at_shipped_defaults_costs_seconds(
        chaos: Callable[..., ChaosStack], request: pytest.FixtureRequest) -> None:
    stack = chaos(env=SHIPPED, reconcile_interval="30")
    stack.sim.set_faults(latency_ms=20)
    ledger = Ledger()
    started = time.monotonic()
    enqueue_burst(ledger)
    in_flight: list[set[str]] = []
    kills: list[float] = []
    for threshold in KILL_AFTER_SENT:
        wait_until(lambda n=threshold: len(stack.sim.sends()) >= n, timeout=60,
                   what=f"{threshold} sends before the kill")
        stack.kill_worker()
        kills.append(time.time())
        in_flight.append(stack.ids_in(ledger.ids(), MessageStatus.SENDING))
        stack.start_worker()
    judge(stack, ledger, in_flight, kills, started, request, "worker-sigkill-defaults")


def test_survivor_takes_over_a_sigkilled_worker_at_shipped_defaults(
        chaos: Callable[..., ChaosStack], request: pytest.FixtureRequest) -> None:
    stack = chaos(env=SHIPPED, reconcile_interval="30")
    stack.start_worker()  # a second worker, already running when the first dies
    stack.sim.set_faults(latency_ms=20)
    ledger = Ledger()
    started = time.monotonic()
    enqueue_burst(ledger)
    wait_until(lambda: len(stack.sim.sends()) >= KILL_AFTER_SENT[0], timeout=60,
               what=f"{KILL_AFTER_SENT[0]} sends before the kill")
    stack.kill_one_worker()
    kills = [time.time()]
    in_flight = [stack.ids_in(ledger.ids(), MessageStatus.SENDING)]
    judge(stack, ledger, in_flight, kills, started, request, "worker-sigkill-survivor")
