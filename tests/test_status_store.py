"""Status records on a real Redis: the lifecycle rules, history, indexes and retention."""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import replace

import pytest
import redis

from zapa_bridge.outbound.dead_letters import DeadLetters
from zapa_bridge.outbound.holds import HeldMessages
from zapa_bridge.outbound.rate_limit import Slot
from zapa_bridge.outbound.retry_policy import RetryPolicy
from zapa_bridge.outbound.status_store import (
    ALLOWED_FROM,
    DEAD_STATUSES,
    HISTORY_LIMIT,
    Created,
    FailureCount,
    Increment,
    MessageStatus,
    StatusStore,
    Turn,
)
from zapa_bridge.store import keys
from zapa_bridge.store.publisher import PreparedMessage

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


def test_a_transition_settles_its_rate_slot_whether_or_not_it_applies(store):
    """The slot of a bridge call counts from the change that records the answer; a slot no
    longer in the log (given back, or aged out) is not put back."""
    store.create("m1", MESSAGE, session="s1")
    log = keys.rate("s1")
    store.redis.zadd(log, {"m1:1": 1.0})
    assert store.transition("m1", S.SENDING, settle=Slot(log, "m1:1")).applied
    assert store.redis.zscore(log, "m1:1") > time.time() - 5
    store.redis.zadd(log, {"m1:1": 1.0})
    assert not store.transition("m1", S.QUEUED, allowed_from={S.HELD},
                                settle=Slot(log, "m1:1")).applied
    assert store.redis.zscore(log, "m1:1") > time.time() - 5
    store.transition("m1", S.SENT, settle=Slot(log, "gone"))
    assert store.redis.zscore(log, "gone") is None


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


# -- every change of status, allowed or refused -----------------------------------------------

# How a record reaches each status from `create`, through real transitions only (no status
# is written into Redis by hand).
ROUTE = {
    S.QUEUED: (),
    S.SENDING: (S.SENDING,),
    S.HELD: (S.HELD,),
    S.SENT: (S.SENDING, S.SENT),
    S.DELIVERED: (S.SENDING, S.SENT, S.DELIVERED),
    S.READ: (S.SENDING, S.SENT, S.DELIVERED, S.READ),
    S.FAILED: (S.FAILED,),
    S.EXPIRED: (S.EXPIRED,),
}
PAIRS = [(before, after) for before in S for after in S]


def put_in(store, status, *, lease_until):
    """A message of a lane (so lanes are walked too) in `status`; a claim's lease ends at
    `lease_until`."""
    store.create("m1", MESSAGE, session="s1", lane="s1>a")
    for step in ROUTE[status]:
        lease = lease_until if step is S.SENDING else None
        assert store.transition("m1", step, lease_until=lease).applied, step
    assert store.get("m1").status is status


def assert_indexes_follow(store, status):
    """The held set, the dead letters and the pending messages agree with the status."""
    redis_db = store.redis
    assert (redis_db.zscore(keys.held("s1"), "m1") is not None) == (status is S.HELD)
    assert (redis_db.zscore(keys.DEAD, "m1") is not None) == (status in DEAD_STATUSES)
    assert ((redis_db.zscore(keys.PENDING, "m1") is not None)
            == (status in {S.QUEUED, S.SENDING}))


def test_the_table_walks_every_pair_of_statuses():
    assert len(PAIRS) == len(S) ** 2 == 64
    assert set(ROUTE) == set(S)


@pytest.mark.parametrize("given_record", [False, True], ids=["read-by-store", "record-given"])
@pytest.mark.parametrize(("before", "after"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_a_change_applies_exactly_when_allowed_from_grants_it(store, before, after,
                                                              given_record):
    """From a claim whose lease still runs, SENDING -> SENDING is refused (busy)."""
    put_in(store, before, lease_until=time.time() + 60)
    record = store.get("m1") if given_record else None
    outcome = store.transition("m1", after, record=record)
    expected = before in ALLOWED_FROM[after] and not before is after is S.SENDING
    assert (expected, before) == (outcome.applied, outcome.previous)
    assert outcome.busy == (before is after is S.SENDING)
    now = after if expected else before
    assert now == store.get("m1").status
    assert_indexes_follow(store, now)


@pytest.mark.parametrize("given_record", [False, True], ids=["read-by-store", "record-given"])
def test_sending_again_is_granted_once_the_claims_lease_ran_out(store, given_record):
    put_in(store, S.SENDING, lease_until=time.time() - 1)
    record = store.get("m1") if given_record else None
    outcome = store.transition("m1", S.SENDING, lease_until=time.time() + 60, record=record)
    assert (outcome.applied, outcome.previous, outcome.busy) == (True, S.SENDING, False)
    assert store.get("m1").attempts == 0 and len(store.get("m1").history) == 3


# -- the keys of a change -------------------------------------------------------------------

def test_a_given_record_names_the_keys_and_the_fields_session_wins(store):
    """A message with no session gets one at its claim; its held set and zapw's id are that
    session's, whether the record is given as read before the claim or read by the store."""
    held = HeldMessages(store.redis)
    store.create("m1", {**MESSAGE, "session": None}, session=None)
    before_claim = store.get("m1")
    assert store.transition("m1", S.SENDING, fields={"session": "s9"},
                            record=before_claim).applied
    # Stale (no session): the script refuses its keys, and the store reads the record again.
    assert store.transition("m1", S.HELD, record=before_claim).applied
    assert (held.ids("s9"), held.sessions()) == (["m1"], ["s9"])
    assert store.transition("m1", S.SENDING).applied
    assert store.transition("m1", S.SENT, fields={"bridge_message_id": "B9"},
                            record=replace(before_claim, session="s9")).applied
    assert (held.sessions(), store.find_by_bridge_id("s9", "B9")) == ([], "m1")


def test_keys_of_a_session_or_lane_the_record_has_not_are_refused_before_any_write(
        store, monkeypatch):
    store.create("m1", MESSAGE, session="s1", lane="s1>a")
    stale = replace(store.get("m1"), session="s2", lane="s2>a")
    # As if another change moved the record again between the store's read and the script.
    monkeypatch.setattr(store, "_placement", lambda message_id: ("s2", "s2>a"))
    counts = [Increment("zapa:test-counts", "n", 1)]
    with pytest.raises(redis.ResponseError, match="STALEKEYS"):
        store.transition("m1", S.HELD, record=stale, counts=counts)
    assert (store.get("m1").status, store.redis.exists("zapa:test-counts")) == (S.QUEUED, 0)
    assert store.redis.keys("zapa:held:*") == []


def test_a_change_takes_neither_a_lane_by_fields_nor_another_messages_record(store):
    store.create("m1", MESSAGE, session="s1")
    store.create("m2", MESSAGE, session="s1")
    with pytest.raises(ValueError, match="lane"):
        store.transition("m1", S.SENDING, fields={"lane": "s1>b"})
    with pytest.raises(ValueError, match="m2"):
        store.transition("m1", S.SENDING, record=store.get("m2"))
    assert store.get("m1").status is S.QUEUED


# -- the record's layout: a compact hash, and its message in a key beside it -----------------

# Redis's default: a hash whose values all fit stays a compact listpack ("ziplist" before 7).
LISTPACK_VALUE_BYTES = 64
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def written_the_old_way(store, message_id, message, *, lane=None):
    """A record as the version before message bodies wrote it: the message inside the
    hash, no body key."""
    store.create(message_id, message, session=message.get("session"), lane=lane)
    store.redis.hset(store.key(message_id), "message", json.dumps(message))
    store.redis.delete(store.body_key(message_id))


def test_a_waiting_record_keeps_every_value_short_and_its_message_in_its_body(store):
    """At Redis's default settings, ready or behind an earlier message of its lane."""
    assert store.redis.config_get("hash-max-listpack-value") == {
        "hash-max-listpack-value": str(LISTPACK_VALUE_BYTES)}
    message = {**MESSAGE, "text": "a long reply " * 300}
    ids = [str(uuid.uuid4()) for _ in range(2)]
    for message_id in ids:
        store.create_unique(message_id, message, session="s1", idempotency_key="",
                            lane="s1>5511988887777", traceparent=TRACEPARENT)
    for message_id in ids:
        record = store.redis.hgetall(store.key(message_id))
        assert "message" not in record
        assert max(len(value.encode()) for value in record.values()) <= LISTPACK_VALUE_BYTES
        assert store.redis.object("encoding", store.key(message_id)) in {"listpack", "ziplist"}
        assert json.loads(store.redis.get(store.body_key(message_id))) == message
        assert store.get(message_id).message == message
    assert [record.message for record in store.get_many(ids)] == [message, message]


def test_the_body_lives_and_dies_with_its_record(store):
    """Kept while unfinished or dead, expired with a finished record, purged with it."""
    ttl = store.redis.ttl
    store.create("m1", MESSAGE, session="s1")
    store.transition("m1", S.SENDING)
    store.transition("m1", S.FAILED)
    assert (ttl(store.key("m1")), ttl(store.body_key("m1"))) == (-1, -1)
    replayed = {**MESSAGE, "text": "again"}
    assert store.transition("m1", S.QUEUED, allowed_from=DEAD_STATUSES,
                            fields={"message": json.dumps(replayed)}).applied
    assert store.get("m1").message == replayed
    assert "message" not in store.redis.hgetall(store.key("m1"))
    store.transition("m1", S.SENDING)
    store.transition("m1", S.SENT)
    assert 3590 <= ttl(store.key("m1")) <= 3600
    assert 3590 <= ttl(store.body_key("m1")) <= 3600

    store.create("m2", MESSAGE, session="s1")
    store.transition("m2", S.FAILED)
    assert DeadLetters(store).purge() == 1
    assert store.redis.exists(store.key("m2"), store.body_key("m2")) == 0


def test_a_record_written_with_its_message_inside_is_read_and_handed_on(store):
    first, second = {**MESSAGE, "text": "one"}, {**MESSAGE, "text": "two"}
    written_the_old_way(store, "m1", first, lane="s1>a")
    written_the_old_way(store, "m2", second, lane="s1>a")
    assert [record.message for record in store.get_many(["m1", "m2"])] == [first, second]
    store.transition("m1", S.SENDING)
    assert store.transition("m1", S.SENT, hand_on=True).taken == Turn("m2", second)
    assert 3590 <= store.redis.ttl(store.key("m1")) <= 3600


def test_a_replay_moves_an_old_records_message_into_its_body(store):
    written_the_old_way(store, "m1", MESSAGE)
    store.transition("m1", S.FAILED)
    replayed = {**MESSAGE, "text": "again"}
    store.transition("m1", S.QUEUED, allowed_from=DEAD_STATUSES,
                     fields={"message": json.dumps(replayed)})
    assert store.redis.hget(store.key("m1"), "message") is None
    assert store.get("m1").message == replayed


def test_retry_delay_grows_exponentially_within_the_cap():
    policy = RetryPolicy(max_retries=3, base=1.0, cap=5.0)
    rng = random.Random(7)
    delays = [policy.delay(failures, rng=rng) for failures in (1, 2, 3, 4, 5)]
    ceilings = [1.0, 2.0, 4.0, 5.0, 5.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert policy.delay(1, slow=True, rng=rng) >= 2.5
    assert [policy.allows(n) for n in (1, 3, 4)] == [True, True, False]
