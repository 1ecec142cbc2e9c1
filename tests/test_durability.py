"""Accepted sends and answered webhooks wait for the replicas asked for
(ZAPA_REDIS_WAIT_REPLICAS); short of them a send is refused and a webhook spooled. The
suite's Redis has no replica, so any wait for one comes up short here; tests/test_sentinel.py
has a replica confirm."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.test_webhooks import RECEIVED
from workers.tasks import services
from zapa_bridge.errors import QueueUnavailable
from zapa_bridge.inbound.events import parse_event
from zapa_bridge.inbound.spool import Spool
from zapa_bridge.outbound.dispatch import Dispatcher
from zapa_bridge.outbound.messages import build_message
from zapa_bridge.outbound.outbox import Outbox
from zapa_bridge.outbound.status_store import StatusStore
from zapa_bridge.queues import Queue
from zapa_bridge.store.durability import NO_WAIT, NotReplicated, ReplicaWait

ONE_REPLICA = ReplicaWait(replicas=1, timeout=0.05)


def outbox_over(client: redis.Redis, durability: ReplicaWait) -> Outbox:
    store = StatusStore(client, retention=60, durability=durability)
    publisher = services().publisher
    return Outbox(store, Dispatcher(store, publisher), publisher)


def test_a_send_no_replica_confirmed_is_refused_as_queue_unavailable(redis_db):
    outbox = outbox_over(redis_db, ONE_REPLICA)
    with pytest.raises(QueueUnavailable, match="NotReplicated"):
        outbox.enqueue(build_message(to="5511988887777", text="hi", session="s1"))


def test_a_refused_send_retried_with_its_key_gets_the_first_calls_id(redis_db):
    """The write was on the master all along: the idempotency key finds it."""
    message = build_message(to="5511988887777", text="hi", session="s1",
                            idempotency_key="reply:1")
    with pytest.raises(QueueUnavailable):
        outbox_over(redis_db, ONE_REPLICA).enqueue(message, "first-id")
    assert outbox_over(redis_db, NO_WAIT).enqueue(message, "second-id") == "first-id"
    assert redis_db.llen(Queue.SEND_DEFAULT) == 1


def test_without_a_wait_a_send_is_queued_as_before(redis_db):
    message_id = outbox_over(redis_db, NO_WAIT).enqueue(
        build_message(to="5511988887777", text="hi", session="s1"))
    assert redis_db.llen(Queue.SEND_DEFAULT) == 1
    assert message_id


def test_a_webhook_no_replica_confirmed_is_spooled_and_queued_once_at_drain(
        redis_db, tmp_path: Path):
    spool = Spool(tmp_path / "spool.db")
    intake = services().intake_over(redis_db, spool, dedupe_ttl=60, durability=ONE_REPLICA)
    assert intake.accept(parse_event(RECEIVED)) == "spooled"
    assert services().intake_over(redis_db, spool, dedupe_ttl=60,
                                  durability=NO_WAIT).drain_spool() == 1
    # The first call's hand-on, not a second one.
    assert redis_db.llen(services().settings.inbound_queue) == 1


def test_a_durable_script_loads_itself_into_a_server_that_forgot_it(redis_db):
    script = ReplicaWait(replicas=1, timeout=0.01).wrap(
        redis_db.register_script("return redis.call('INCR', KEYS[1])"))
    redis_db.script_flush()
    with pytest.raises(NotReplicated, match=r"0 of 1 replicas confirmed within 0\.01 s"):
        script(keys=["zapa:test:counter"])
    assert redis_db.get("zapa:test:counter") == "1"
