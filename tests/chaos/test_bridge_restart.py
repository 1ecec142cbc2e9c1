"""Chaos: zapw restarts mid-run and, as in its mock mode (no session had WhatsApp
credentials), forgets both sessions. Sends that find them gone (404) wait, the sessions are
made again, and every message goes once, in order, with no dead letter."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.chaos.ledger import Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack
from tests.helpers import wait_until
from workers.tasks import send_message
from zapa_bridge.inbound.dead_letters import InboundDeadLetters
from zapa_bridge.outbound.dead_letters import DeadLetters
from zapa_bridge.outbound.status_store import DEAD_STATUSES, MessageStatus

pytestmark = pytest.mark.slow

MESSAGES = 300
RESTART_AFTER_SENT = 100
DOWNTIME = 3.0


def test_a_bridge_restart_forgetting_both_sessions_loses_and_fails_nothing_and_keeps_order(
        chaos: Callable[..., ChaosStack], request: pytest.FixtureRequest) -> None:
    # While zapw restores, connections are refused: the retry budget must outlast that, as
    # production's defaults outlast minutes (see bridge-refusing).
    stack = chaos(worker_env={"ZAPA_RETRY_BACKOFF_MAX": "1", "ZAPA_MAX_RETRIES": "60"})
    # Each answer takes 10 ms, so the restart finds the run in full flow.
    stack.sim.set_faults(latency_ms=10)
    ledger = Ledger()
    started = time.monotonic()
    for conversation, index in round_robin(conversations(20, ("A", "B")), 0, MESSAGES):
        ledger.add(conversation, index, send_message.delay(
            to=conversation.to, text=conversation.text(index),
            session=conversation.session).id)

    wait_until(lambda: len(stack.sim.sends()) >= RESTART_AFTER_SENT, timeout=30,
               what=f"{RESTART_AFTER_SENT} sends before the restart")
    # Stops cleanly (answering what it was handling), forgets every session, posts no
    # session.disconnected, and refuses connections while it restores.
    stack.sim.restart(downtime=DOWNTIME, drop_sessions=True)
    forgotten = stack.sim.session("A") is None and stack.sim.session("B") is None
    held_seen = wait_until(lambda: stack.ids_in(ledger.ids(), MessageStatus.HELD),
                           timeout=15, what="sends held for the missing sessions")

    settled = stack.settle(ledger, timeout=60)
    seconds = time.monotonic() - started
    tally = Tally.of(ledger.items(), stack.sim.sends())
    dead = DeadLetters.count_in(stack.redis)
    inbound_dead = InboundDeadLetters.count_in(stack.redis)

    reasons = sorted({record.reason or "" for record in stack.store.get_many(ledger.ids())
                      if record.status in DEAD_STATUSES})
    verdict = Verdict()
    verdict.expect(forgotten, "the restart forgot both sessions")
    verdict.expect(settled and not tally.lost, "0 lost")
    verdict.expect(dead == 0, "0 dead letters")
    verdict.expect(inbound_dead == 0, "0 inbound dead letters")
    verdict.expect(tally.duplicates == 0, "0 duplicates")
    verdict.expect(tally.order_violations == 0, "order kept")
    verdict.expect(tally.strays == 0, "no stray sends")
    verdict.expect(not stack.restarts, "no process died")
    report(request, "bridge-restart", tally, seconds=seconds, verdict=verdict,
           notes=f"restarted after {RESTART_AFTER_SENT} sends, down {DOWNTIME:g} s, "
                 f"both sessions forgotten; {len(held_seen)} held at once, "
                 f"{dead} dead letters{': ' + '; '.join(reasons) if reasons else ''}")
    verdict.enforce()
