"""A webhook whose dedupe write (SET NX) reached Redis, but whose answer was lost on the
way back, is still queued, once. The web-redis-outage scenario's cut hit this now and then
(a message lost) until the dedupe key held the token of the intake that set it; here the
relay loses the answer on purpose, every time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.chaos.tcp_gate import TcpGate
from workers.queues import Queue
from workers.tasks import publish_event
from zapa_bridge.intake import Intake
from zapa_bridge.redis_conn import fast_redis_client
from zapa_bridge.spool import Spool
from zapa_bridge.webhook_events import parse_event

RECEIVED = {"sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
            "timestamp": 1795599514484,
            "data": {"from": "5511988887777@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
                     "messageId": "LOST-ANSWER", "timestamp": 1700000000000, "isGroup": False,
                     "type": "text", "text": "hello"}}


@pytest.fixture
def gate(redis_db: redis.Redis) -> Iterator[TcpGate]:
    """The web tier's way to the suite's Redis."""
    port = int(os.environ["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    gate = TcpGate(port).restore()
    yield gate
    gate.cut()


@pytest.mark.parametrize(("answers_lost", "outcome"), [(1, "accepted"), (2, "spooled")],
                         ids=["the-retry-finds-its-own-key", "spooled-then-drained"])
def test_a_webhook_whose_dedupe_answer_was_lost_is_still_queued_once(
        gate: TcpGate, redis_db: redis.Redis, tmp_path: Path, answers_lost: int,
        outcome: str) -> None:
    # The web tier's intake as the web process builds it (its Redis client retries once),
    # reaching Redis through the gate.
    intake = Intake(fast_redis_client(gate.url()), publish_event,
                    Spool(tmp_path / "spool.sqlite3"), dedupe_ttl=3600)
    gate.lose_answers(b"zapa:seen:", answers_lost)
    answer = intake.accept(parse_event(RECEIVED))
    intake.drain_spool()
    assert (answer, redis_db.llen(Queue.EVENTS)) == (outcome, 1)
