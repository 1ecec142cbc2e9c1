"""Chaos: the Redis master is SIGKILLed mid-run and Sentinel promotes its replica, while a
service enqueues 1,000 messages over the HTTP API on sessions A and B and 500 WhatsApp users
write in. Sends and webhooks wait for the replica (ZAPA_REDIS_WAIT_REPLICAS=1), so nothing
accepted is lost; only a send in flight at the kill may go twice; no process exits.

The killed master is started again once the replica is promoted, as a process manager
would; Sentinel makes it the new master's replica. Until then no replica can confirm a
write, so new sends are refused (the producers retry with their keys) and webhooks are
spooled: the scenario measures how soon already accepted sends flow again.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.http_producer import GIVE_UP, HttpProducer
from tests.chaos.ledger import Conversation, Ledger, Tally, conversations, round_robin
from tests.chaos.results import Verdict, report
from tests.chaos.stack import ChaosStack, within
from tests.helpers import wait_until
from zapa_bridge.devtools.replicated_redis import ReplicatedRedis
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

MESSAGES = 1000  # sends, half on each session
WEBHOOKS = 500
RATE = 60.0  # sends per second, per producer (one per session)
WEBHOOK_RATE = 40.0  # the users' webhooks per second
KILL_AFTER_SENT = 300
# The users write this many, then wait for the kill to write the rest: half the webhooks
# come after it, however fast the sends went.
KILL_AFTER_WEBHOOKS = WEBHOOKS // 2
CONCURRENCY = 4  # the worker's threads: at most this many sends in flight at the kill
IN_FLIGHT_MARGIN = 0.5  # s around the kill in which a send counts as in flight


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    """Requested before `chaos`, so it outlives the stack's processes."""
    with ReplicatedRedis(directory=str(tmp_path / "redis")) as servers:
        yield servers


def test_the_master_sigkilled_mid_run_loses_nothing_accepted_and_no_process_exits(
        replicated: ReplicatedRedis, chaos: Callable[..., ChaosStack],
        request: pytest.FixtureRequest) -> None:
    stack = chaos(redis_url=replicated.url,
                  env={"ZAPA_REDIS_WAIT_REPLICAS": "1",
                       "ZAPA_WORKER_CONCURRENCY": str(CONCURRENCY)})
    stack.sim.set_faults(latency_ms=10)  # sends take a moment: the kill finds some in flight
    ledger = Ledger()
    convs = conversations(20, ("A", "B"))
    sends = [HttpProducer(stack.web.url, list(round_robin(
        [c for c in convs if c.session == session], 0, MESSAGES // 2)), ledger, rate=RATE)
        for session in ("A", "B")]
    # The users: conversations of their own (numbers 50+), answered by the echo handler.
    users = [Conversation(50 + n, ("A", "B")[n % 2], f"55118{n:08d}") for n in range(20)]
    inbound_ids: list[str] = []
    killed = threading.Event()

    def write() -> None:
        started = time.monotonic()
        for k, (user, index) in enumerate(round_robin(users, 0, WEBHOOKS)):
            if k == KILL_AFTER_WEBHOOKS:
                killed.wait(timeout=60)
                started = time.monotonic() - k / WEBHOOK_RATE
            time.sleep(max(0.0, started + k / WEBHOOK_RATE - time.monotonic()))
            inbound_ids.append(stack.user_writes(user, index, ledger))

    writer = threading.Thread(target=write, daemon=True, name="whatsapp-users")
    started = time.monotonic()
    for thread in (*sends, writer):
        thread.start()
    wait_until(lambda: len(stack.sim.sends()) >= KILL_AFTER_SENT
               and len(inbound_ids) >= KILL_AFTER_WEBHOOKS, timeout=30,
               what=f"{KILL_AFTER_SENT} sends and {KILL_AFTER_WEBHOOKS} webhooks before the kill")

    # In flight at the kill: claimed (`sending`) just before it, or sent around it (claimed
    # since the look, or answered so shortly before that the replica may not have the
    # answer's record change): only these may go twice.
    looked_at = time.time()
    send_ids = [i for i in ledger.ids() if i not in set(inbound_ids)]
    claimed = stack.ids_in(send_ids, MessageStatus.SENDING)
    sent_at_kill, posted_at_kill = len(stack.sim.sends()), len(inbound_ids)
    # The service's sends zapw took before the kill (the rest of sim.sends are echo replies).
    service_sent_at_kill = sum(1 for send in stack.sim.sends()
                               if not str(send.body.get("text")).startswith("echo: "))
    replicated.master.kill()
    killed_at, killed_wall = time.monotonic(), time.time()
    killed.set()
    promoted = within(lambda: replicated.current_master() is replicated.replica, timeout=20)
    promoted_after = time.monotonic() - killed_at
    flowing = within(lambda: len(stack.sim.sends()) > sent_at_kill + CONCURRENCY, timeout=30,
                     interval=0.02)
    flowing_after = time.monotonic() - killed_at
    replicated.master.start()  # back as the new master's replica, once Sentinel sees it
    rejoined = within(lambda: replicated.replicas_online() >= 1, timeout=30, interval=0.2)
    rejoined_after = time.monotonic() - killed_at

    for thread in (*sends, writer):
        thread.join(timeout=WEBHOOKS / WEBHOOK_RATE + GIVE_UP + 30)
    for producer in sends:
        assert producer.error is None, producer.error

    def reply_ids() -> list[str]:
        names = [keys.idempotency(f"reply:{inbound_id}") for inbound_id in inbound_ids]
        return [message_id for message_id in stack.redis.mget(names) if message_id]

    def record_ids() -> list[str]:
        return [i for i in ledger.ids() if i not in set(inbound_ids)] + reply_ids()

    settled = stack.settle(ledger, timeout=60, ids=record_ids)
    seconds = time.monotonic() - started
    items = ledger.items()
    tally = Tally.of(items, stack.sim.sends())
    ordered = Tally.of([item for item in items if item.conversation.number < 50],
                       stack.sim.sends())
    tally = dataclasses.replace(tally, order_violations=ordered.order_violations)
    exits = Counter(stack.restarts)
    text_of = {item.message_id: item.text for item in items}
    in_flight = {text_of[i] for i in claimed if i in text_of} | {
        str(send.body.get("text")) for send in stack.sim.sends()
        if looked_at - IN_FLIGHT_MARGIN <= send.at <= killed_wall + IN_FLIGHT_MARGIN}
    # The first copy of each text sent around the kill; a repeat is any later one.
    repeated_in_flight = set(tally.extra_copies) <= in_flight
    spooled = stack.web.log().count("event=webhook.spooled")
    lost_replies = sum(1 for text in tally.lost if text.startswith("echo: "))
    refused = sum(producer.refused for producer in sends)

    verdict = Verdict()
    verdict.expect(service_sent_at_kill < MESSAGES, "the kill came mid-run")
    verdict.expect(promoted is not None, "the replica promoted")
    verdict.expect(settled and not tally.lost, "0 lost")
    verdict.expect(not any(producer.gave_up for producer in sends),
                   "every send accepted by the API in the end")
    verdict.expect(tally.duplicates <= len(in_flight),
                   "duplicates <= sends in flight at the kill")
    verdict.expect(repeated_in_flight, "only sends in flight repeated")
    verdict.expect(tally.order_violations == 0, "0 order violations")
    verdict.expect(tally.strays == 0, "no stray sends")
    verdict.expect(flowing is not None, "sends flow again")
    verdict.expect(rejoined is not None, "the old master back as a replica")
    verdict.expect(not exits, "no process exited")
    report(request, "redis-failover", tally, seconds=seconds, verdict=verdict,
           notes=f"master SIGKILLed after {sent_at_kill} sends and {posted_at_kill} webhooks, "
                 f"{len(in_flight)} sends in flight; "
                 f"replica promoted in {promoted_after:.1f} s; sends flowing again after "
                 f"{flowing_after:.1f} s; old master a replica after {rejoined_after:.1f} s; "
                 f"{refused} API calls retried, {spooled} webhooks spooled; "
                 f"{lost_replies} of the lost are replies; processes "
                 "restarted: " + (", ".join(f"{n} x{c}" for n, c in sorted(exits.items()))
                                  or "0"))
    verdict.enforce()
