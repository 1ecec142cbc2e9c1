"""zapw's receipts applied to records on a real Redis: only forward, a failure a dead
letter, and a receipt that beats the worker's `sent` record kept and applied by it."""

from __future__ import annotations

import time

import pytest

from zapa_bridge.outbound.receipts import (
    KEPT_FOR,
    Receipt,
    ReceiptOutcome,
    Receipts,
    receipt_of,
)
from zapa_bridge.outbound.status_store import MessageStatus, StatusStore
from zapa_bridge.store import keys

S = MessageStatus
MESSAGE = {"to": "5511988887777", "type": "text", "text": "hi", "session": "s1",
           "priority": "default"}


@pytest.fixture
def store(redis_db) -> StatusStore:
    return StatusStore(redis_db, retention=3600)


@pytest.fixture
def receipts(redis_db) -> Receipts:
    return Receipts(redis_db, retention=3600)


def claimed(store: StatusStore, message_id: str) -> None:
    store.create(message_id, MESSAGE, session="s1")
    assert store.transition(message_id, S.SENDING, fields={"session": "s1"}).applied


def sent(store: StatusStore, message_id: str, bridge_id: str) -> None:
    claimed(store, message_id)
    assert store.transition(message_id, S.SENT, note="accepted by bridge",
                            fields={"bridge_message_id": bridge_id}).applied


def receipt(status: MessageStatus, bridge_id: str = "B1", reason: str = "") -> Receipt:
    return Receipt("s1", bridge_id, status, note=f"message.{status}", reason=reason)


def test_receipts_move_a_record_only_forward(store, receipts):
    sent(store, "m1", "B1")
    now = time.time()
    assert receipts.apply(receipt(S.READ), now=now).outcome is ReceiptOutcome.APPLIED
    late = receipts.apply(receipt(S.DELIVERED), now=now)
    assert (late.outcome, late.message_id, late.status) == (ReceiptOutcome.UNCHANGED, "m1",
                                                           "read")
    record = store.get("m1")
    assert record.status is S.READ
    assert [(entry["status"], entry["note"]) for entry in record.history][-2:] == [
        ("sent", "accepted by bridge"), ("read", "message.read")]


def test_a_failure_zapw_reports_after_sent_is_a_dead_letter_kept_for_an_operator(
        store, receipts, redis_db):
    sent(store, "m1", "B1")
    failed = receipts.apply(receipt(S.FAILED, reason="bridge reported failure: blocked"),
                            now=time.time())
    assert failed.outcome is ReceiptOutcome.APPLIED
    record = store.get("m1")
    assert (record.status, record.reason) == (S.FAILED, "bridge reported failure: blocked")
    assert redis_db.zscore(keys.DEAD, "m1") is not None
    assert redis_db.ttl(store.key("m1")) == redis_db.ttl(store.body_key("m1")) == -1


def test_a_receipt_before_the_sent_record_is_kept_and_applied_by_the_sent_change(
        store, receipts, redis_db):
    claimed(store, "m1")
    for status in (S.READ, S.DELIVERED):
        assert receipts.apply(receipt(status), now=time.time()).outcome is ReceiptOutcome.KEPT
    kept = keys.kept_receipts("s1", "B1")
    assert 0 < redis_db.ttl(kept) <= KEPT_FOR
    assert store.get("m1").status is S.SENDING

    assert store.transition("m1", S.SENT, fields={"bridge_message_id": "B1"}).applied
    record = store.get("m1")
    assert record.status is S.READ
    assert [entry["status"] for entry in record.history] == [
        "queued", "sending", "sent", "delivered", "read"]
    assert record.history[-1]["note"] == "message.read (arrived before sent)"
    assert not redis_db.exists(kept)
    assert 0 < redis_db.ttl(store.body_key("m1")) <= 3600


def test_a_sent_receipt_for_no_known_record_is_not_kept(receipts, redis_db):
    assert receipts.apply(receipt(S.SENT), now=time.time()).outcome is ReceiptOutcome.UNKNOWN
    assert not redis_db.exists(keys.kept_receipts("s1", "B1"))


@pytest.mark.parametrize(("event_type", "data", "expected"), [
    ("message.sent", {"messageId": "B1"}, S.SENT),
    ("message.sent", {"messageId": "B1", "status": 3}, S.DELIVERED),
    ("message.sent", {"messageId": "B1", "status": 4}, S.READ),
    ("message.read", {"messageId": "B1", "status": 3}, S.READ),
    ("message.failed", {"messageId": "B1"}, S.FAILED),
])
def test_the_status_a_webhook_reports_counts_its_ack_level(event_type, data, expected):
    found = receipt_of(event_type, data, "s1")
    assert found is not None and found.status is expected


def test_a_webhook_naming_no_message_carries_no_receipt():
    assert receipt_of("message.delivered", {"status": 3}, "s1") is None
