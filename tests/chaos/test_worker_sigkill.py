"""Chaos: the only worker is SIGKILLed twice mid-run. Nothing is lost, order holds, and only a
send in flight at a kill (its record `sending` when the worker died) may reach WhatsApp twice.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.chaos.ledger import Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack
from tests.helpers import wait_until
from workers.tasks import send_message
from zapa_bridge.outbound.status_store import MessageStatus

pytestmark = pytest.mark.slow

MESSAGES = 1000
KILL_AFTER_SENT = (300, 650)


def test_worker_sigkilled_twice_mid_run_loses_nothing_and_repeats_only_sends_in_flight(
        chaos: Callable[..., ChaosStack], request: pytest.FixtureRequest) -> None:
    stack = chaos()
    # Each answer takes 20 ms after zapw took the send, so a kill finds sends in flight.
    stack.sim.set_faults(latency_ms=20)
    ledger = Ledger()
    started = time.monotonic()
    for conversation, index in round_robin(conversations(20, ("A", "B")), 0, MESSAGES):
        ledger.add(conversation, index, send_message.delay(
            to=conversation.to, text=conversation.text(index), session=conversation.session).id)

    # In flight at a kill: the records left `sending` once the (only) worker is dead, which
    # are exactly the sends it had claimed and not yet seen answered.
    in_flight: list[set[str]] = []
    for threshold in KILL_AFTER_SENT:
        wait_until(lambda n=threshold: len(stack.sim.sends()) >= n, timeout=30,
                   what=f"{threshold} sends before the kill")
        stack.kill_worker()
        in_flight.append(stack.ids_in(ledger.ids(), MessageStatus.SENDING))
        stack.start_worker()

    settled = stack.settle(ledger, timeout=50)
    seconds = time.monotonic() - started
    tally = Tally.of(ledger.items(), stack.sim.sends())
    text_of = {item.message_id: item.text for item in ledger.items()}
    kills_in_flight = Counter(text_of[i] for kill in in_flight for i in kill)

    verdict = Verdict()
    verdict.expect(settled and not tally.lost, "0 lost")
    verdict.expect(tally.duplicates <= sum(len(kill) for kill in in_flight),
                   "duplicates <= in flight at the kills")
    verdict.expect(all(extra <= kills_in_flight[text]
                       for text, extra in tally.extra_copies.items()),
                   "only sends in flight at a kill repeated")
    verdict.expect(tally.order_violations == 0, "0 order violations")
    verdict.expect(tally.strays == 0, "no stray sends")
    verdict.expect(not stack.restarts, "no other process died")
    report(request, "worker-sigkill", tally, seconds=seconds, verdict=verdict,
           notes=f"in flight at the kills: {', '.join(str(len(k)) for k in in_flight)}")
    verdict.enforce()
