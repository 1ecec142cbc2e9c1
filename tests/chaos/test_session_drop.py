"""Chaos: session A drops for 10 s mid-run and comes back. Its messages wait (held) and then
go, in order and once; session B goes on sending as if nothing happened."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.chaos.ledger import Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack, within
from tests.helpers import wait_until
from workers.tasks import send_message
from zapa_bridge.outbound.holds import HeldMessages

pytestmark = pytest.mark.slow

DOWN = 10.0


def test_a_session_down_for_10_s_mid_run_loses_nothing_keeps_order_and_spares_the_other(
        chaos: Callable[..., ChaosStack], request: pytest.FixtureRequest) -> None:
    stack = chaos()
    convs = conversations(20, ("A", "B"))
    ledger = Ledger()

    def enqueue(start: int, count: int) -> None:
        for conversation, index in round_robin(convs, start, count):
            ledger.add(conversation, index, send_message.delay(
                to=conversation.to, text=conversation.text(index),
                session=conversation.session).id)

    started = time.monotonic()
    enqueue(0, 100)
    wait_until(lambda: len(stack.sim.sends("A")) >= 20, timeout=30, what="20 sends on A")
    stack.sim.disconnect("A")
    down_at = time.monotonic()
    enqueue(100, 200)

    # B is unaffected: everything it was given is sent while A is still down.
    texts_b = ledger.texts("B")
    b_done = within(lambda: texts_b <= {send.body["text"] for send in stack.sim.sends("B")}
                    and time.monotonic(), timeout=DOWN - (time.monotonic() - down_at))
    held_a = HeldMessages(stack.redis).count("A")
    time.sleep(max(0.0, DOWN - (time.monotonic() - down_at)))  # the outage itself
    stack.sim.connect("A")

    settled = stack.settle(ledger, timeout=60)
    seconds = time.monotonic() - started
    tally = Tally.of(ledger.items(), stack.sim.sends())

    verdict = Verdict()
    verdict.expect(settled and not tally.lost, "0 lost")
    verdict.expect(tally.order_violations == 0, "order kept")
    verdict.expect(tally.duplicates == 0, "0 duplicates")
    verdict.expect(tally.strays == 0, "no stray sends")
    verdict.expect(b_done is not None, "B all sent while A was down")
    verdict.expect(held_a > 0, "A's messages held while it was down")
    verdict.expect(not stack.restarts, "no process died")
    report(request, "session-drop", tally, seconds=seconds, verdict=verdict,
           notes=f"B done {b_done - down_at:.1f} s into A's outage; {held_a} held on A"
           if b_done else f"B not done during A's outage; {held_a} held on A")
    verdict.enforce()
