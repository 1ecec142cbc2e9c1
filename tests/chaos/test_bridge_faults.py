"""Chaos: a bridge that refuses connections for 20 s mid-run, and one that answers 30% of
sends with 500. Neither loses, repeats or reorders a message: a refused connection or a 500
means zapw sent nothing, and the retry goes in its turn."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.chaos.ledger import Conversation, Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack
from tests.helpers import wait_until
from workers.tasks import send_message

pytestmark = pytest.mark.slow

OUTAGE = 20.0


def enqueue(ledger: Ledger, convs: list[Conversation], start: int, count: int) -> None:
    for conversation, index in round_robin(convs, start, count):
        ledger.add(conversation, index, send_message.delay(
            to=conversation.to, text=conversation.text(index), session=conversation.session).id)


# The suite's backoff is compressed (0.05 s doubling); a cap of 1 s and 60 retries outlast
# the 20 s outage as production's defaults (2 s doubling to 120 s, 8 retries) outlast ~6 min.
def test_bridge_refusing_connections_for_20_s_mid_run_loses_repeats_and_reorders_nothing(
        chaos: Callable[..., ChaosStack], request: pytest.FixtureRequest) -> None:
    stack = chaos(worker_env={"ZAPA_RETRY_BACKOFF_MAX": "1", "ZAPA_MAX_RETRIES": "60"})
    convs = conversations(20, ("A", "B"))
    ledger = Ledger()
    started = time.monotonic()
    enqueue(ledger, convs, 0, 200)
    wait_until(lambda: len(stack.sim.sends()) >= 50, timeout=30, what="50 sends")

    # Graceful: a request already being answered is finished, so none is left half-done
    # (accepted, answer lost), which would be a legitimate "possible duplicate".
    stack.sim.refuse_connections(OUTAGE, graceful=True)
    refused_at = time.time()
    sent_before = len(stack.sim.sends())
    enqueue(ledger, convs, 200, 200)
    wait_until(lambda: not stack.sim.refusing, timeout=OUTAGE + 10, what="the bridge back")

    settled = stack.settle(ledger, timeout=60)
    seconds = time.monotonic() - started
    sends = stack.sim.sends()
    tally = Tally.of(ledger.items(), sends)
    retried = sum(1 for record in stack.store.get_many(ledger.ids()) if record.failures)

    verdict = Verdict()
    verdict.expect(settled and not tally.lost, "0 lost")
    verdict.expect(tally.duplicates == 0, "0 duplicates")
    verdict.expect(tally.order_violations == 0, "order kept")
    verdict.expect(tally.strays == 0, "no stray sends")
    verdict.expect(sent_before < len(ledger) and retried > 0, "the outage was met mid-run")
    verdict.expect(not any(refused_at < send.at < refused_at + OUTAGE - 0.5 for send in sends),
                   "nothing accepted while refusing")
    verdict.expect(not stack.restarts, "no process died")
    report(request, "bridge-refusing", tally, seconds=seconds, verdict=verdict,
           notes=f"refused {OUTAGE:.0f} s after {sent_before} sends; {retried} retried")
    verdict.enforce()


# At 30% failures, 20 retries leave a message undelivered once in 0.3**21 (about 1e-11).
def test_bridge_answering_30_percent_of_sends_500_loses_repeats_and_reorders_nothing(
        chaos: Callable[..., ChaosStack], request: pytest.FixtureRequest) -> None:
    stack = chaos(worker_env={"ZAPA_MAX_RETRIES": "20"})
    stack.sim.set_faults(failure_rate=0.3, failure_status=500,
                         failure_error="Failed to send message")
    ledger = Ledger()
    started = time.monotonic()
    enqueue(ledger, conversations(20, ("A", "B")), 0, 500)

    settled = stack.settle(ledger, timeout=60)
    seconds = time.monotonic() - started
    tally = Tally.of(ledger.items(), stack.sim.sends())
    records = stack.store.get_many(ledger.ids())
    failures = sum(record.failures for record in records)

    verdict = Verdict()
    verdict.expect(settled and not tally.lost, "0 lost")
    verdict.expect(tally.duplicates == 0, "0 duplicates")
    verdict.expect(tally.order_violations == 0, "order kept")
    verdict.expect(tally.strays == 0, "no stray sends")
    verdict.expect(failures > 0.2 * len(ledger), "the faults were met")
    verdict.expect(not stack.restarts, "no process died")
    report(request, "bridge-500s", tally, seconds=seconds, verdict=verdict,
           notes=f"{failures} sends answered 500")
    verdict.enforce()
