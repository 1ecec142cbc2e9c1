"""zapw's events end to end: posted to the webhook, handled by a real worker on a real Redis,
observed in the inbound log, the message records, the session registry and zapw's sends."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.helpers import wait_until
from workers.tasks import send_message, services
from zapa_bridge.outbound.receipts import KEPT_FOR
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

SENDER = "5511988887777"
OWN_JID = "1234567890:1@s.whatsapp.net"
GROUP = "120363025246125486"


def received(data: dict[str, Any], session: str = "s1") -> dict[str, Any]:
    """A `message.received` envelope as zapw posts it (the contract's example)."""
    return {"sessionId": session, "origin": "1234567890", "eventType": "message.received",
            "timestamp": 1795599514484,
            "data": {"from": f"{SENDER}@s.whatsapp.net", "to": OWN_JID, "timestamp": 1700000000000,
                     "isGroup": False, **data}}


def text(message_id: str, body: str) -> dict[str, Any]:
    return {"messageId": message_id, "type": "text", "text": body}


def event(event_type: str, data: dict[str, Any], *, session: str = "s1",
          timestamp: int = 1795599600000) -> dict[str, Any]:
    return {"sessionId": session, "origin": "1234567890", "eventType": event_type,
            "timestamp": timestamp, "data": data}


def inbound(inbound_id: str) -> dict[str, Any]:
    """The inbound record once it was handed on (or found to have nowhere to go)."""
    return wait_until(lambda: (entry := services().inbound.get(inbound_id)) is not None
                      and entry["routed_to"] is not None and entry,
                      what=f"inbound {inbound_id} routed")


def record_of(message_id: str):
    return services().store.get(message_id)


def wait_status(message_id: str, status: MessageStatus, timeout: float = 20.0):
    return wait_until(lambda: (r := record_of(message_id)) is not None and r.status == status
                      and r, timeout=timeout, what=f"{message_id} {status}")


def wait_session(session: str, status: str):
    return wait_until(lambda: (s := services().sessions.get(session)) is not None
                      and s.status == status and s, what=f"session {session} {status}")


def wait_logged(worker, task: str, outcome: str, count: int = 1) -> None:
    """Until the worker logged `count` runs of `task` that returned `outcome`."""
    pattern = re.compile(rf"Task {re.escape(task)}\[[^\]]+\] succeeded in [0-9.e-]+s: "
                         rf"{re.escape(outcome)}$", re.MULTILINE)
    wait_until(lambda: len(pattern.findall(worker.log())) >= count,
               what=f"{task} returning {outcome}")


def bodies(zapw, session: str) -> list[dict[str, Any]]:
    return [send.body for send in zapw.sent_to(session)]


def sent_message(zapw, session: str = "s1") -> tuple[str, str]:
    """Send one message through the pipeline; returns (our id, zapw's id)."""
    message_id = send_message.delay(to=SENDER, text="outbound", session=session).id
    record = wait_status(message_id, MessageStatus.SENT)
    assert record.bridge_message_id == zapw.sent_to(session)[-1].message_id
    return message_id, record.bridge_message_id


# --- message.received -----------------------------------------------------------------------

def test_text_is_recorded_and_echoed_through_the_session_it_arrived_on(
        start_worker, zapw, post_event):
    zapw.add_session("s1")
    zapw.add_session("s2")
    start_worker()
    assert post_event(received(text("3EB0AAAA1111", "Hello there!"))) == "accepted"
    assert post_event(received(text("3EB0AAAA1111", "Hi on two"), session="s2")) == "accepted"

    entry = inbound("s1:3EB0AAAA1111")
    assert entry["routed_to"] == "zapa.echo"
    message = entry["message"]
    assert (message["session"], message["sender"], message["recipient"]) == (
        "s1", SENDER, "1234567890")
    assert (message["type"], message["text"], message["is_group"]) == (
        "text", "Hello there!", False)
    assert (message["message_id"], message["timestamp"], message["account"]) == (
        "3EB0AAAA1111", 1700000000000, "1234567890")
    assert inbound("s2:3EB0AAAA1111")["message"]["text"] == "Hi on two"

    wait_until(lambda: zapw.sent_to("s1") and zapw.sent_to("s2"), what="both echoes")
    assert bodies(zapw, "s1") == [{"to": SENDER, "type": "text", "text": "echo: Hello there!"}]
    assert bodies(zapw, "s2") == [{"to": SENDER, "type": "text", "text": "echo: Hi on two"}]


def test_group_message_is_recorded_with_its_group_and_gets_no_echo(
        start_worker, zapw, post_event):
    zapw.add_session("s1")
    worker = start_worker()
    group_message = received({**text("3EB0GGGG0001", "hi all"), "isGroup": True,
                              "groupId": f"{GROUP}@g.us",
                              "from": "5511977776666@s.whatsapp.net"})
    assert post_event(group_message) == "accepted"

    message = inbound("s1:3EB0GGGG0001")["message"]
    assert (message["is_group"], message["group_id"], message["sender"]) == (
        True, GROUP, "5511977776666")
    wait_logged(worker, "zapa.echo", "None")
    assert zapw.sent_to() == []


def test_media_location_and_contact_are_kept_and_a_sticker_is_unsupported_not_dropped(
        start_worker, zapw, post_event):
    zapw.add_session("s1")
    start_worker()
    image = {"messageId": "3EB0IMG", "type": "image", "caption": "my cat", "hasMedia": True}
    place = {"latitude": -23.55, "longitude": -46.63, "name": "Sé", "address": "Praça da Sé"}
    location = {"messageId": "3EB0LOC", "type": "location", "location": place}
    contact = {"messageId": "3EB0CON", "type": "contact",
               "contact": {"name": "Ana", "number": "5511977776666"}}
    sticker = {"messageId": "3EB0STK", "hasMedia": True}
    for data in (image, location, contact, sticker):
        assert post_event(received(data)) == "accepted"

    got = {key: inbound(f"s1:3EB0{key}")["message"] for key in ("IMG", "LOC", "CON", "STK")}
    assert (got["IMG"]["type"], got["IMG"]["has_media"], got["IMG"]["caption"]) == (
        "image", True, "my cat")
    assert (got["LOC"]["type"], got["LOC"]["location"]) == ("location", place)
    assert (got["CON"]["type"], got["CON"]["contact"]) == (
        "contact", {"name": "Ana", "number": "5511977776666"})
    assert (got["STK"]["type"], got["STK"]["has_media"], got["STK"]["text"]) == (
        "unsupported", True, None)
    assert inbound("s1:3EB0STK")["routed_to"] == "zapa.echo"

    wait_until(lambda: len(zapw.sent_to("s1")) == 4, what="four echoes")
    assert sorted(body["text"] for body in bodies(zapw, "s1")) == [
        "Sorry, I cannot read this kind of message yet.", "echo: got your contact",
        "echo: got your image", "echo: got your location"]


# --- status of outbound messages ------------------------------------------------------------

def test_delivered_then_read_move_the_record_and_a_late_delivered_never_moves_it_back(
        start_worker, zapw, post_event):
    zapw.add_session("s1")
    start_worker()
    message_id, bridge_id = sent_message(zapw)

    assert post_event(event("message.delivered", {"messageId": bridge_id, "status": 3})) == (
        "accepted")
    wait_status(message_id, MessageStatus.DELIVERED)
    assert post_event(event("message.read", {"messageId": bridge_id, "status": 4})) == (
        "accepted")
    wait_status(message_id, MessageStatus.READ)

    # A redelivery of the same event stops at the intake's dedupe; one that arrives out of
    # order (here without an ack level) is applied there, which keeps `read`.
    assert post_event(event("message.delivered", {"messageId": bridge_id, "status": 3})) == (
        "duplicate")
    assert post_event(event("message.delivered", {"messageId": bridge_id})) == "accepted"
    record = record_of(message_id)
    assert record.status == MessageStatus.READ
    assert [entry["status"] for entry in record.history] == [
        "queued", "sending", "sent", "delivered", "read"]


def test_read_arriving_before_delivered_keeps_the_message_read(start_worker, zapw, post_event):
    zapw.add_session("s1")
    worker = start_worker()
    message_id, bridge_id = sent_message(zapw)
    assert post_event(event("message.read", {"messageId": bridge_id, "status": 4})) == (
        "accepted")
    wait_status(message_id, MessageStatus.READ)
    assert post_event(event("message.delivered", {"messageId": bridge_id, "status": 3})) == (
        "accepted")
    assert record_of(message_id).status == MessageStatus.READ
    # Applied at the intake: no task ran for either receipt.
    assert "Task zapa.handle_event[" not in worker.log()


def test_sent_event_with_the_read_ack_level_marks_the_message_read(
        start_worker, zapw, post_event):
    zapw.add_session("s1")
    start_worker()
    message_id, bridge_id = sent_message(zapw)
    assert post_event(event("message.sent", {"messageId": bridge_id, "status": 4})) == (
        "accepted")
    wait_status(message_id, MessageStatus.READ)


def test_failed_event_on_a_sent_message_fails_it_with_the_bridge_error(
        start_worker, zapw, post_event):
    zapw.add_session("s1")
    start_worker()
    message_id, bridge_id = sent_message(zapw)
    failed = event("message.failed", {"messageId": bridge_id, "error": "recipient blocked us"})
    assert post_event(failed) == "accepted"
    record = wait_status(message_id, MessageStatus.FAILED)
    assert "recipient blocked us" in record.reason
    assert [dead.id for dead in services().dead_letters.list()] == [message_id]


def test_status_for_an_unknown_message_is_kept_for_a_while_and_others_proceed(
        start_worker, zapw, post_event, redis_db):
    zapw.add_session("s1")
    worker = start_worker()
    assert post_event(event("message.read", {"messageId": "3EB0NOBODY", "status": 4})) == (
        "accepted")
    kept = keys.kept_receipts("s1", "3EB0NOBODY")
    assert list(redis_db.hgetall(kept)) == ["read"]
    assert 0 < redis_db.ttl(kept) <= KEPT_FOR
    assert post_event(received(text("3EB0AFTER", "still here"))) == "accepted"
    wait_until(lambda: zapw.sent_to("s1"), what="the echo of the message after it")
    assert bodies(zapw, "s1") == [{"to": SENDER, "type": "text", "text": "echo: still here"}]

    log = worker.log()
    assert "Traceback" not in log
    assert "ERROR" not in log
    assert services().dead_letters.count() == 0


# --- sessions -------------------------------------------------------------------------------

def test_disconnected_session_holds_sends_without_calling_zapw_until_it_connects(
        start_worker, zapw, post_event):
    # zapw itself would take the send: only the registry can stop the call.
    zapw.add_session("s1")
    zapw.add_session("s2")
    start_worker()
    disconnected = event("session.disconnected",
                         {"reason": {"message": "Connection Closed", "statusCode": 428}},
                         timestamp=1795599400000)
    assert post_event(disconnected) == "accepted"
    state = wait_session("s1", "disconnected")
    assert json.loads(state.reason) == {"message": "Connection Closed", "statusCode": 428}

    held = send_message.delay(to=SENDER, text="wait for me", session="s1").id
    wait_status(held, MessageStatus.HELD)
    meanwhile = send_message.delay(to=SENDER, text="s2 goes on", session="s2").id
    wait_status(meanwhile, MessageStatus.SENT)
    assert bodies(zapw, "s1") == []
    assert record_of(held).status == MessageStatus.HELD

    connected = event("session.connected", {"phoneNumber": "1234567890", "name": "Test User"},
                      timestamp=1795599500000)
    assert post_event(connected) == "accepted"
    wait_status(held, MessageStatus.SENT)
    assert bodies(zapw, "s1") == [{"to": SENDER, "type": "text", "text": "wait for me"}]
    state = services().sessions.get("s1")
    assert (state.status, state.phone_number, state.name, state.reason) == (
        "connected", "1234567890", "Test User", None)
    assert services().sessions.session_for_phone("1234567890") == "s1"
    assert services().held.count("s1") == 0


def test_each_session_releases_only_its_own_held_messages_when_it_connects(
        start_worker, zapw, post_event):
    zapw.add_session("s1")
    zapw.add_session("s2")
    start_worker()
    for session in ("s1", "s2"):
        assert post_event(event("session.disconnected", {"reason": {"statusCode": 408}},
                                session=session, timestamp=1000)) == "accepted"
        wait_session(session, "disconnected")
    held = {session: send_message.delay(to=SENDER, text=f"for {session}", session=session).id
            for session in ("s1", "s2")}
    for message_id in held.values():
        wait_status(message_id, MessageStatus.HELD)

    assert post_event(event("session.connected", {"phoneNumber": "1234567890"},
                            session="s1", timestamp=2000)) == "accepted"
    wait_status(held["s1"], MessageStatus.SENT)
    assert record_of(held["s2"]).status == MessageStatus.HELD
    assert services().sessions.get("s2").status == "disconnected"
    assert zapw.sent_to("s2") == []

    assert post_event(event("session.connected", {"phoneNumber": "1098765432"},
                            session="s2", timestamp=2000)) == "accepted"
    wait_status(held["s2"], MessageStatus.SENT)
    assert bodies(zapw, "s1") == [{"to": SENDER, "type": "text", "text": "for s1"}]
    assert bodies(zapw, "s2") == [{"to": SENDER, "type": "text", "text": "for s2"}]


def test_a_disconnect_reason_is_stored_as_json_not_as_a_python_repr(
        start_worker, zapw, post_event):
    boom = {"data": None, "isBoom": True, "isServer": False,
            "output": {"statusCode": 428, "headers": {},
                       "payload": {"statusCode": 428, "error": "Precondition Required",
                                   "message": "Connection Closed"}}}
    start_worker()
    assert post_event(event("session.disconnected", {"reason": boom})) == "accepted"
    state = wait_session("s1", "disconnected")
    assert json.loads(state.reason) == boom


def test_older_session_event_arriving_after_a_newer_one_does_not_win(
        start_worker, zapw, post_event):
    worker = start_worker()
    assert post_event(event("session.connected", {"phoneNumber": "1234567890"},
                            timestamp=2000)) == "accepted"
    wait_session("s1", "connected")
    assert post_event(event("session.disconnected", {"reason": {"statusCode": 428}},
                            timestamp=1000)) == "accepted"
    wait_logged(worker, "zapa.handle_event", "'stale'")
    state = services().sessions.get("s1")
    assert (state.status, state.event_at, state.reason) == ("connected", 2000, None)


def test_connection_status_event_updates_the_session_status(start_worker, zapw, post_event):
    start_worker()
    assert post_event(event("connection.status", {"status": "connecting"})) == "accepted"
    assert wait_session("s1", "connecting").id == "s1"
