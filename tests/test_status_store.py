"""Status records on a real Redis: the lifecycle rules, history, indexes and retention."""

from __future__ import annotations

import random
import time

import pytest

from zapa_bridge.outbound.dead_letters import DeadLetters
from zapa_bridge.outbound.holds import HeldMessages
from zapa_bridge.outbound.retry_policy import RetryPolicy
from zapa_bridge.outbound.status_store import (
    HISTORY_LIMIT,
    Created,
    FailureCount,
    Increment,
    MessageStatus,
    StatusStore,
)
from zapa_bridge.store.prepared import PreparedMessage

S = MessageStatus
MESSAGE = {"to": "5511988887777", "type": "text", "text": "hi", "session": "s1",
           "priority": "default"}


@pytest.fixture
def store(redis_db) -> StatusStore:
    return StatusStore(redis_db, retention=3600)


def test_create_refuses_an_existing_id(store):
    assert store.create("m1", MESSAGE, session="s1") is Created.READY
    assert store.create("m1", MESSAGE, session="s1") is Created.EXISTS
    assert store.get("m1").status == S.QUEUED


def test_a_create_repeated_by_the_client_answers_what_it_did_and_queues_once(
        store, redis_db, monkeypatch):
    """redis-py repeats a call whose answer was lost: the repeat (same instant) is not
    taken for a second message with the same id, nor pushed twice."""
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.25)
    push = PreparedMessage("zapa:test:queue", "payload")
    for _ in range(2):
        assert store.create_unique("m1", MESSAGE, session="s1", idempotency_key="",
                                   lane="s1>a", push=push) == (Created.READY, "m1")
        assert store.create_unique("m2", MESSAGE, session="s1", idempotency_key="",
                                   lane="s1>a", push=push) == (Created.WAITING, "m2")
    assert redis_db.lrange("zapa:test:queue", 0, -1) == ["payload"]
    monkeypatch.setattr(time, "time", lambda: 1_800_000_001.0)
    assert store.create("m1", MESSAGE, session="s1") is Created.EXISTS


def test_transition_follows_the_lifecycle_and_refuses_going_back(store):
    store.create("m1", MESSAGE, session="s1")
    assert store.transition("m1", S.SENDING, count_attempt=True).applied
    assert store.transition("m1", S.SENT, fields={"bridge_message_id": "B1"}).applied
    refused = store.transition("m1", S.SENDING)
    assert (refused.applied, refused.previous) == (False, S.SENT)
    assert store.transition("m1", S.READ).applied
    assert not store.transition("m1", S.DELIVERED).applied  # a late delivered never wins
    record = store.get("m1")
    assert (record.status, record.attempts, record.bridge_message_id) == (S.READ, 1, "B1")
    assert [entry["status"] for entry in record.history] == ["queued", "sending", "sent", "read"]


def test_transition_of_an_unknown_message_is_not_applied(store):
    outcome = store.transition("missing", S.SENDING)
    assert (outcome.applied, outcome.previous) == (False, None)


def test_sending_claim_is_exclusive_until_its_lease_runs_out(store):
    store.create("m1", MESSAGE, session="s1")
    assert store.transition("m1", S.SENDING, lease_until=time.time() + 60).applied
    second = store.transition("m1", S.SENDING, lease_until=time.time() + 60)
    assert second.busy and not second.applied
    store.redis.hset(store.key("m1"), "lease_until", time.time() - 1)
    assert store.transition("m1", S.SENDING, lease_until=time.time() + 60).applied


def test_a_transition_adds_its_counts_whether_or_not_it_applies(store):
    """The outcome of an attempt is counted in the same call that records it."""
    store.create("m1", MESSAGE, session="s1")
    counts = (Increment("zapa:test-counts", "n", 1), Increment("zapa:test-counts", "sum", 0.25))
    assert store.transition("m1", S.SENDING, counts=counts).applied
    assert not store.transition("m1", S.DELIVERED, allowed_from={S.SENT}, counts=counts).applied
    assert store.transition("missing", S.SENDING, counts=counts).previous is None
    assert store.redis.hgetall("zapa:test-counts") == {"n": "3", "sum": "0.75"}


def test_history_keeps_only_the_latest_entries(store):
    store.create("m1", MESSAGE, session="s1")
    for attempt in range(HISTORY_LIMIT):
        store.transition("m1", S.SENDING, note=f"attempt {attempt}")
        store.transition("m1", S.QUEUED, note="retry")
    history = store.get("m1").history
    assert len(history) == HISTORY_LIMIT
    assert history[-1]["status"] == "queued"


def test_bridge_message_id_finds_our_message(store):
    store.create("m1", MESSAGE, session="s1")
    store.transition("m1", S.SENDING)
    store.transition("m1", S.SENT, fields={"bridge_message_id": "3EB0ABC"})
    assert store.find_by_bridge_id("s1", "3EB0ABC") == "m1"
    assert store.find_by_bridge_id("s2", "3EB0ABC") is None


def test_held_index_follows_the_status(store):
    held = HeldMessages(store.redis)
    store.create("m1", MESSAGE, session="s1")
    store.transition("m1", S.SENDING)
    store.transition("m1", S.HELD)
    assert (held.ids("s1"), held.sessions()) == (["m1"], ["s1"])
    store.transition("m1", S.SENDING)
    assert (held.ids("s1"), held.sessions()) == ([], [])


def test_dead_letter_is_kept_without_expiry_until_replayed(store):
    dead = DeadLetters(store)
    store.create("m1", MESSAGE, session="s1")
    store.transition("m1", S.SENDING)
    store.transition("m1", S.FAILED, fields={"reason": "SessionNotFound: gone"})
    assert store.redis.ttl(store.key("m1")) == -1
    assert [(r.id, r.reason) for r in dead.list()] == [("m1", "SessionNotFound: gone")]
    store.transition("m1", S.QUEUED, failures=FailureCount.RESET)
    assert dead.count() == 0
    assert store.redis.ttl(store.key("m1")) == -1  # queued again: kept until done
    store.transition("m1", S.SENDING)
    store.transition("m1", S.SENT)
    assert 3590 <= store.redis.ttl(store.key("m1")) <= 3600


def test_retry_delay_grows_exponentially_within_the_cap():
    policy = RetryPolicy(max_retries=3, base=1.0, cap=5.0)
    rng = random.Random(7)
    delays = [policy.delay(failures, rng=rng) for failures in (1, 2, 3, 4, 5)]
    ceilings = [1.0, 2.0, 4.0, 5.0, 5.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert policy.delay(1, slow=True, rng=rng) >= 2.5
    assert [policy.allows(n) for n in (1, 3, 4)] == [True, True, False]
