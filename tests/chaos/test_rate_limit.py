"""Chaos: session A, limited to 5 sends per second, is given 50 messages at once. The
simulator's clock never sees more than 5 of its sends in any second, and session B, not
limited, is not held up: A's messages wait in Redis, not in worker threads."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.chaos.ledger import Ledger, Tally, busiest_window, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack
from workers.tasks import send_message

pytestmark = pytest.mark.slow

BURST, WINDOW = 5, 1.0  # ZAPA_SESSION_RATE_LIMITS=A=5/1s
B_DONE_WITHIN = 5.0  # s; A needs at least (50 - 5) / 5 = 9 s


def test_a_session_limited_to_5_per_s_never_sends_more_than_5_in_any_second(
        chaos: Callable[..., ChaosStack], request: pytest.FixtureRequest) -> None:
    # The suite's ZAPA_RATE_LIMIT=off leaves B unlimited.
    stack = chaos(worker_env={"ZAPA_SESSION_RATE_LIMITS": f"A={BURST}/{WINDOW:g}s"})
    ledger = Ledger()
    started, started_at = time.monotonic(), time.time()
    for conversation, index in round_robin(conversations(10, ("A", "B")), 0, 100):
        ledger.add(conversation, index, send_message.delay(
            to=conversation.to, text=conversation.text(index), session=conversation.session).id)

    settled = stack.settle(ledger, timeout=45)
    seconds = time.monotonic() - started
    on_a = [item for item in ledger.items() if item.conversation.session == "A"]
    on_b = [item for item in ledger.items() if item.conversation.session == "B"]
    tally_a = Tally.of(on_a, stack.sim.sends("A"))
    tally_b = Tally.of(on_b, stack.sim.sends("B"))
    times_a = [send.at for send in stack.sim.sends("A")]
    busiest = busiest_window(times_a, WINDOW)
    b_took = max((send.at for send in stack.sim.sends("B")), default=started_at) - started_at

    verdict = Verdict()
    verdict.expect(settled and not tally_a.lost and not tally_b.lost, "0 lost")
    verdict.expect(busiest <= BURST, f"no {WINDOW:g} s window with more than {BURST} sends on A")
    verdict.expect(tally_a.order_violations == tally_b.order_violations == 0, "order kept")
    verdict.expect(tally_a.duplicates == tally_b.duplicates == 0, "0 duplicates")
    verdict.expect(b_took < B_DONE_WITHIN and not tally_b.lost,
                   f"unlimited B all sent within {B_DONE_WITHIN:g} s")
    span = max(times_a) - min(times_a) if times_a else 0.0
    verdict.expect(not stack.restarts, "no process died")
    report(request, "rate-limit", tally_a, seconds=seconds, verdict=verdict,
           notes=f"A at {BURST}/{WINDOW:g}s: busiest second {busiest} sends, 50 sent over "
                 f"{span:.1f} s; B (50, unlimited) done in {b_took:.1f} s")
    verdict.enforce()
