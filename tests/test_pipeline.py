"""The outbound pipeline end to end: a real Redis, real worker processes, zapw over HTTP."""

from __future__ import annotations

import re

import pytest

from tests.helpers import recipient, wait_until
from workers.tasks import release_held, run_reconcile, send_message, services
from zapa_bridge.ops.metrics import POSSIBLE_DUPLICATES
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

TO = "5511988887777"


def record_of(message_id: str):
    return services().store.get(message_id)


def wait_status(message_id: str, status: MessageStatus, timeout: float = 20.0):
    return wait_until(lambda: (r := record_of(message_id)) is not None and r.status == status
                      and r, timeout=timeout, what=f"{message_id} {status}")


def statuses(record) -> list[str]:
    return [entry["status"] for entry in record.history]


def test_text_reaches_the_bridge_with_the_exact_body_zapw_expects(start_worker, zapw):
    zapw.add_session("s1")
    start_worker()
    result = send_message.delay(to=TO, text="hi", session="s1", priority="high")
    record = wait_status(result.id, MessageStatus.SENT)
    assert [send.body for send in zapw.sent_to("s1")] == [
        {"to": TO, "type": "text", "text": "hi"}]
    assert record.bridge_message_id == zapw.sent_to("s1")[0].message_id
    assert statuses(record) == ["queued", "sending", "sent"]


def test_every_message_type_reaches_the_bridge_in_zapw_field_names(start_worker, zapw):
    zapw.add_session("s1")
    start_worker()
    sends = [
        {"type": "image", "media_url": "https://cdn.test/a.png", "caption": "look"},
        {"type": "document", "media_base64": "SGVsbG8=", "file_name": "a.txt"},
        {"type": "location", "latitude": 0, "longitude": -46.6, "name": "Here"},
        {"type": "contact", "contact_name": "Ana", "contact_number": "5511977776666"},
    ]
    ids = [send_message.delay(to=TO, session="s1", **fields).id for fields in sends]
    for message_id in ids:
        wait_status(message_id, MessageStatus.SENT)
    bodies = sorted((send.body for send in zapw.sent_to("s1")), key=lambda b: b["type"])
    assert bodies == [
        {"to": TO, "type": "contact", "contactName": "Ana", "contactNumber": "5511977776666"},
        {"to": TO, "type": "document", "mediaBase64": "SGVsbG8=", "fileName": "a.txt"},
        {"to": TO, "type": "image", "mediaUrl": "https://cdn.test/a.png", "caption": "look"},
        {"to": TO, "type": "location", "latitude": 0.0, "longitude": -46.6, "name": "Here"},
    ]


def test_two_server_errors_then_success_ends_sent_after_three_attempts(start_worker, zapw):
    zapw.add_session("s1")
    zapw.fail_next(2, 500, "Failed to send message")
    start_worker()
    result = send_message.delay(to=TO, text="hi", session="s1")
    record = wait_status(result.id, MessageStatus.SENT)
    assert record.attempts == 3
    assert statuses(record) == ["queued", "sending", "queued", "sending", "queued",
                                "sending", "sent"]
    assert len(zapw.sent_to("s1")) == 1


def test_retries_exhausted_become_a_dead_letter_with_the_reason(start_worker, zapw):
    zapw.add_session("s1")
    zapw.fail_next(50, 500, "Failed to send message")
    start_worker()
    result = send_message.delay(to=TO, text="hi", session="s1")
    record = wait_status(result.id, MessageStatus.FAILED)
    assert record.attempts == 6  # the first try and ZAPA_MAX_RETRIES=5 retries
    assert record.reason == ("gave up after 6 attempts: BridgeServerError: "
                             "Failed to send message")
    assert [dead.id for dead in services().dead_letters.list()] == [result.id]


def test_unknown_session_is_a_dead_letter_after_one_attempt(start_worker, zapw):
    start_worker()
    result = send_message.delay(to=TO, text="hi", session="ghost")
    record = wait_status(result.id, MessageStatus.FAILED)
    assert record.attempts == 1
    assert record.reason == "SessionNotFound: Session ghost not found"
    dead = services().dead_letters.list()
    assert [(d.id, d.message["text"], d.attempts) for d in dead] == [(result.id, "hi", 1)]


def test_invalid_request_answer_is_a_dead_letter_without_retry(start_worker, zapw):
    zapw.add_session("s1")
    zapw.fail_next(1, 400, 'Recipient "to" is required')
    start_worker()
    result = send_message.delay(to=TO, text="hi", session="s1")
    record = wait_status(result.id, MessageStatus.FAILED)
    assert (record.attempts, record.reason) == (
        1, 'BridgeInvalidRequest: Recipient "to" is required')


def test_not_connected_session_holds_then_release_sends(start_worker, zapw):
    zapw.add_session("s1", connected=False)
    start_worker()
    ids = [send_message.delay(to=recipient(i), text=f"m{i}", session="s1").id
           for i in range(3)]
    for message_id in ids:
        wait_status(message_id, MessageStatus.HELD)
    assert services().held.ids("s1") == sorted(ids, key=lambda i: services().held.ids("s1")
                                                .index(i))
    assert services().held.count("s1") == 3
    assert zapw.sent_to() == []

    zapw.set_connected("s1", True)
    release_held.delay("s1")
    for message_id in ids:
        record = wait_status(message_id, MessageStatus.SENT)
        assert record.failures == 0
    assert sorted(send.body["text"] for send in zapw.sent_to("s1")) == ["m0", "m1", "m2"]
    assert services().held.count("s1") == 0
    assert services().held.sessions() == []


def test_periodic_reconcile_releases_held_messages_of_connected_sessions(start_worker, zapw):
    zapw.add_session("s1", connected=False)
    zapw.add_session("s2", connected=False)
    start_worker()
    held_1 = send_message.delay(to=TO, text="a", session="s1").id
    held_2 = send_message.delay(to=TO, text="b", session="s2").id
    wait_status(held_1, MessageStatus.HELD)
    wait_status(held_2, MessageStatus.HELD)

    zapw.set_connected("s1", True)
    from workers.tasks import reconcile

    reconcile.delay()
    wait_status(held_1, MessageStatus.SENT)
    assert record_of(held_2).status == MessageStatus.HELD
    assert [send.body["text"] for send in zapw.sent_to()] == ["a"]


def test_held_message_past_its_validity_becomes_an_expired_dead_letter(start_worker, zapw):
    zapw.add_session("s1", connected=False)
    start_worker()
    result = send_message.delay(to=TO, text="late", session="s1")
    wait_status(result.id, MessageStatus.HELD)
    outbox = services().outbox
    assert outbox.expire_held(validity=3600) == 0
    assert outbox.expire_held(validity=0) == 1
    record = record_of(result.id)
    assert record.status == MessageStatus.EXPIRED
    assert record.reason.startswith("expired")
    assert [dead.id for dead in services().dead_letters.list()] == [result.id]
    assert services().held.count("s1") == 0


def test_high_priority_backlog_is_sent_before_any_low(start_worker, zapw):
    zapw.add_session("s1")
    # Each to its own recipient: inside one conversation, order beats priority.
    low = [send_message.delay(to=recipient(i), text=f"low{i}", session="s1",
                              priority="low").id for i in range(200)]
    high = [send_message.delay(to=recipient(1000 + i), text=f"high{i}", session="s1",
                               priority="high").id for i in range(20)]
    start_worker(concurrency=1)
    wait_until(lambda: len(zapw.sent_to()) == 220, timeout=60, what="220 sends")
    order = [send.body["text"] for send in zapw.sent_to()]
    assert all(text.startswith("high") for text in order[:20]), order[:25]
    assert all(record_of(i).status == MessageStatus.SENT for i in low + high)


def test_replayed_dead_letter_is_sent_under_its_original_id(start_worker, zapw):
    start_worker()
    result = send_message.delay(to=TO, text="again", session="s1")
    wait_status(result.id, MessageStatus.FAILED)
    zapw.add_session("s1")
    replayed = services().outbox.replay(result.id)
    assert (replayed.id, replayed.status) == (result.id, MessageStatus.QUEUED)
    record = wait_status(result.id, MessageStatus.SENT)
    assert record.attempts == 2
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["again"]
    assert services().dead_letters.count() == 0


def test_purge_removes_every_dead_letter(start_worker, zapw):
    start_worker()
    ids = [send_message.delay(to=TO, text="x", session="ghost").id for _ in range(3)]
    for message_id in ids:
        wait_status(message_id, MessageStatus.FAILED)
    assert services().dead_letters.purge() == 3
    assert services().dead_letters.list() == []
    assert [record_of(i) for i in ids] == [None, None, None]


def test_redelivered_message_already_sent_is_not_sent_again(start_worker, zapw):
    zapw.add_session("s1")
    start_worker()
    result = send_message.delay(to=TO, text="once", session="s1")
    wait_status(result.id, MessageStatus.SENT)
    record = services().store.get(result.id)
    assert services().dispatcher.requeue(record.id, record.message)
    marker = send_message.delay(to=TO, text="after", session="s1")
    wait_status(marker.id, MessageStatus.SENT)
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["once", "after"]


def test_from_number_sends_through_the_session_with_that_phone(start_worker, zapw):
    zapw.add_session("s1", phone="1234567890")
    zapw.add_session("s2", phone="1098765432")
    start_worker()
    result = send_message.delay(to=TO, text="hi", from_number="1098765432")
    record = wait_status(result.id, MessageStatus.SENT)
    assert record.session == "s2"
    assert [send.session for send in zapw.sent_to()] == ["s2"]


def test_from_number_without_a_session_is_a_dead_letter(start_worker, zapw):
    zapw.add_session("s1", phone="1234567890")
    start_worker()
    result = send_message.delay(to=TO, text="hi", from_number="1098765432")
    record = wait_status(result.id, MessageStatus.FAILED)
    assert record.reason == "no bridge session has number 109*****32"


def test_worker_killed_mid_burst_loses_nothing(start_worker, zapw):
    zapw.add_session("s1")
    zapw.latency = 0.02
    worker = start_worker(concurrency=4)
    ids = [send_message.delay(to=TO, text=f"m{i}", session="s1").id for i in range(200)]
    wait_until(lambda: len(zapw.sent_to()) >= 40, timeout=30, what="40 sends")
    worker.kill()
    sent_before_kill = len(zapw.sent_to())
    assert sent_before_kill < 200

    start_worker(concurrency=4)

    def all_sent() -> bool:
        # What beat does every ZAPA_RECONCILE_INTERVAL: it re-queues a message the kill
        # caught between the worker's pop and its unacked bookkeeping.
        run_reconcile()
        return all(record_of(i).status == MessageStatus.SENT for i in ids)

    wait_until(all_sent, timeout=60, interval=0.5, what="all 200 sent")
    texts = [send.body["text"] for send in zapw.sent_to()]
    assert set(texts) == {f"m{i}" for i in range(200)}
    # Only sends in flight at the kill (at most the worker's concurrency) may repeat.
    assert len(texts) - 200 <= 4
    # Each repeat is flagged in its history and counted as a possible duplicate.
    flagged = {f"m{n}" for n, message_id in enumerate(ids)
               if any("possible duplicate" in entry["note"]
                      for entry in record_of(message_id).history)}
    repeated = {text for text in texts if texts.count(text) > 1}
    assert repeated <= flagged
    counted = services().redis.hget(keys.METRICS_COUNTERS, POSSIBLE_DUPLICATES)
    assert int(counted or 0) == len(flagged)


def test_rejected_api_key_is_retried_and_sent_once_fixed(start_worker, zapw):
    zapw.add_session("s1")
    zapw.fail_next(2, 401, body={"error": "Unauthorized", "message": "Invalid API key"})
    start_worker()
    result = send_message.delay(to=TO, text="hi", session="s1")
    record = wait_status(result.id, MessageStatus.SENT)
    assert record.attempts == 3
    notes = [entry["note"] for entry in record.history if entry["status"] == "queued"]
    assert len(notes) == 3 and all(n.startswith("retry in") for n in notes[1:])


def test_unreachable_bridge_is_retried_then_dead_lettered(start_worker, zapw):
    from zapa_bridge.devtools.embedded_redis import free_port

    start_worker(ZAPW_URL=f"http://127.0.0.1:{free_port()}")
    result = send_message.delay(to=TO, text="hi", session="s1")
    record = wait_status(result.id, MessageStatus.FAILED)
    assert record.attempts == 6
    assert record.reason == ("gave up after 6 attempts: BridgeUnreachable: "
                             "bridge unreachable: Connection refused")


def test_worker_logs_carry_no_message_text_and_no_full_number(start_worker, zapw):
    zapw.add_session("s1")
    zapw.fail_next(1, 500)
    worker = start_worker()
    ok = send_message.delay(to=TO, text="very private words", session="s1")
    dead = send_message.delay(to="5511977776666", text="more private words", session="ghost")
    wait_status(ok.id, MessageStatus.SENT)
    wait_status(dead.id, MessageStatus.FAILED)
    log = worker.log()
    assert ok.id in log and dead.id in log
    for secret in ("private words", TO, "5511977776666"):
        assert secret not in log


def test_a_send_whose_state_redis_refuses_is_a_dead_letter_at_once_not_a_loop(
        start_worker, zapw):
    """A key of the wrong type makes the send's script fail the same way every time: the
    message ends a dead letter on its first delivery instead of being requeued forever."""
    zapw.add_session("s1")
    services().redis.set("zapa:sessions", "not a hash")
    worker = start_worker()
    result = send_message.delay(to=TO, text="hi", session="s1")
    record = wait_status(result.id, MessageStatus.FAILED)
    assert record.reason.startswith("state unusable: ResponseError: WRONGTYPE")
    assert zapw.sent_to() == []
    # One delivery, one dead letter: Celery's received line of a send is at DEBUG, so the
    # dead letter's own line stands for it.
    wait_until(lambda: f"event=message.failed message_id={result.id}" in worker.log(),
               what="the dead letter's line")
    assert worker.log().count(f"event=message.failed message_id={result.id}") == 1
    assert not re.search(rf"Task zapa\.send_message\[{result.id}\] retry", worker.log())
