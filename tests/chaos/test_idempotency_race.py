"""Chaos: two `send_message` calls with one idempotency key, released together, 100 times.
Each pair gets one message id and WhatsApp gets one message: 100 sends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.chaos.ledger import Conversation, Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack
from workers.tasks import send_message

pytestmark = pytest.mark.slow

ROUNDS = 100


def racing_send(barrier: threading.Barrier, conversation: Conversation, index: int,
                key: str) -> str:
    barrier.wait(timeout=10)  # both calls start together
    return send_message.delay(to=conversation.to, text=conversation.text(index),
                              session=conversation.session, idempotency_key=key).id


def test_two_sends_with_one_idempotency_key_raced_100_times_make_100_sends(
        chaos: Callable[..., ChaosStack], request: pytest.FixtureRequest) -> None:
    stack = chaos()
    ledger = Ledger()
    split = 0  # rounds whose two calls got different ids
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for n, (conversation, index) in enumerate(
                round_robin(conversations(20, ("A", "B")), 0, ROUNDS)):
            barrier = threading.Barrier(2)
            calls = [pool.submit(racing_send, barrier, conversation, index, f"race-{n}")
                     for _ in range(2)]
            first, second = (call.result(timeout=30) for call in calls)
            split += first != second
            ledger.add(conversation, index, first)

    settled = stack.settle(ledger, timeout=45)
    seconds = time.monotonic() - started
    tally = Tally.of(ledger.items(), stack.sim.sends())

    verdict = Verdict()
    verdict.expect(split == 0, "both calls of a pair get one message id")
    verdict.expect(settled and tally.sent == ROUNDS and not tally.lost and not tally.duplicates,
                   f"{ROUNDS} sends, one per key")
    verdict.expect(tally.strays == 0, "no stray sends")
    verdict.expect(not stack.restarts, "no process died")
    report(request, "idempotency-race", tally, seconds=seconds, verdict=verdict,
           notes=f"{ROUNDS} pairs raced")
    verdict.enforce()
