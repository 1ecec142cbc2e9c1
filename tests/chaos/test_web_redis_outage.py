"""Chaos: 1,000 inbound messages reach the web tier while its way to Redis is cut for 10 s.
Each is processed once: recorded, handed to the (echo) assistant, and answered once."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.chaos.ledger import Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack
from tests.chaos.tcp_gate import TcpGate
from tests.helpers import wait_until
from zapa_bridge.inbound.messages import InboundLog
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

WEBHOOKS = 1000
RATE = 80.0  # inbound messages per second: the run spans the outage
OUTAGE = 10.0


@pytest.fixture
def web_redis_gate() -> Iterator[TcpGate]:
    """The web tier's only way to the suite's Redis."""
    port = int(os.environ["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    gate = TcpGate(port).restore()
    yield gate
    gate.cut()


def test_1000_webhooks_with_redis_cut_off_from_the_web_tier_for_10_s_are_processed_once(
        web_redis_gate: TcpGate, chaos: Callable[..., ChaosStack],
        request: pytest.FixtureRequest) -> None:
    stack = chaos(web_redis_url=web_redis_gate.url())
    # A conversation here is a WhatsApp user writing to session A or B; its replies go back
    # to that user through the same session.
    users = conversations(20, ("A", "B"))
    ledger = Ledger()
    inbound_ids: list[str] = []

    def write() -> None:
        started = time.monotonic()
        for k, (user, index) in enumerate(round_robin(users, 0, WEBHOOKS)):
            time.sleep(max(0.0, started + k / RATE - time.monotonic()))  # a steady pace
            inbound_ids.append(stack.user_writes(user, index, ledger))

    writer = threading.Thread(target=write, daemon=True, name="whatsapp-users")
    started = time.monotonic()
    writer.start()
    wait_until(lambda: len(ledger) >= 150, timeout=30, what="150 webhooks posted")
    web_redis_gate.cut()
    time.sleep(OUTAGE)  # the outage itself
    web_redis_gate.restore()
    writer.join(timeout=WEBHOOKS / RATE + 30)

    def reply_ids() -> list[str]:
        names = [keys.idempotency(f"reply:{inbound_id}") for inbound_id in inbound_ids]
        return [message_id for message_id in stack.redis.mget(names) if message_id]

    settled = stack.settle(ledger, timeout=80, ids=reply_ids)
    seconds = time.monotonic() - started
    tally = Tally.of(ledger.items(), stack.sim.sends())
    pipe = stack.redis.pipeline(transaction=False)
    for inbound_id in inbound_ids:
        pipe.exists(InboundLog.key(inbound_id))
    recorded = sum(pipe.execute())
    spooled = stack.web.log().count("event=webhook.spooled")
    dropped = sum(1 for d in stack.sim.webhook_deliveries("message.received")
                  if d.outcome == "dropped")

    verdict = Verdict()
    verdict.expect(len(ledger) == WEBHOOKS and recorded == WEBHOOKS, "every message recorded")
    verdict.expect(settled and not tally.lost, "every message answered")
    verdict.expect(tally.duplicates == 0, "none answered twice")
    verdict.expect(tally.strays == 0, "no stray sends")
    verdict.expect(spooled > 0, "the outage was met (events spooled)")
    verdict.expect(not stack.restarts, "no process died")
    report(request, "web-redis-outage", tally, seconds=seconds, verdict=verdict, ordered=False,
           notes=f"{spooled} webhooks spooled, {dropped} dropped by zapw")
    verdict.enforce()
