"""A webhook whose intake script (dedupe and take in, one Lua call) ran in Redis, but whose
answer was lost on the way back, is handed on once and answered `accepted`, never `duplicate`.
The web-redis-outage scenario's cut hit this now and then (a message lost) until the dedupe
key held the token of the intake that set it; here the relay loses the answer on purpose,
every time, and redis-py repeats the call as it does after any connection error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.chaos.tcp_gate import TcpGate
from tests.helpers import task_kwargs
from workers.tasks import services
from zapa_bridge.inbound.events import parse_event
from zapa_bridge.inbound.spool import Spool
from zapa_bridge.store.connection import fast_redis_client

pytestmark = pytest.mark.slow


def received(message_id: str) -> dict:
    return {"sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
            "timestamp": 1795599514484,
            "data": {"from": "5511988887777@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
                     "messageId": message_id, "timestamp": 1700000000000, "isGroup": False,
                     "type": "text", "text": "hello"}}


def queued_message_ids(client: redis.Redis) -> list[str]:
    """zapw's ids of the messages handed to the inbound task, oldest first."""
    queue = services().settings.inbound_queue
    return [task_kwargs(json.loads(raw))["message"]["message_id"]
            for raw in reversed(client.lrange(queue, 0, -1))]


@pytest.fixture
def gate(redis_db: redis.Redis) -> Iterator[TcpGate]:
    """The web tier's way to the suite's Redis."""
    port = int(os.environ["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    gate = TcpGate(port).restore()
    yield gate
    gate.cut()


@pytest.mark.parametrize(("answers_lost", "outcome"), [(1, "accepted"), (2, "spooled")],
                         ids=["the-retry-finds-its-own-mark", "spooled-then-drained"])
def test_a_webhook_whose_intake_answer_was_lost_is_queued_once(
        gate: TcpGate, redis_db: redis.Redis, tmp_path: Path, answers_lost: int,
        outcome: str) -> None:
    # The web tier's intake as the web process builds it (its Redis client retries once),
    # reaching Redis through the gate, after a first webhook (so Redis knows the script and
    # the lost answer is the script's own, not a NOSCRIPT).
    intake = services().intake_over(fast_redis_client(gate.url()),
                                    Spool(tmp_path / "spool.sqlite3"), dedupe_ttl=3600)
    assert intake.accept(parse_event(received("BEFORE"))) == "accepted"
    gate.lose_answers(b"zapa:seen:", answers_lost)
    answer = intake.accept(parse_event(received("LOST-ANSWER")))
    intake.drain_spool()
    assert (answer, queued_message_ids(redis_db)) == (outcome, ["BEFORE", "LOST-ANSWER"])
    assert intake.stats() == {"message.received:accepted": 2}
    assert intake.spool.count() == 0
