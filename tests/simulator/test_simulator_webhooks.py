"""The simulator posts webhooks as zapw does: envelope, header, data per event, retry policy.

A real HTTP receiver in the test gets them; retry delays are set to tens of milliseconds.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.helpers import wait_until
from tests.simulator.support import TO, connected, holds
from zapa_bridge.devtools.embedded_redis import free_port
from zapa_bridge.simulator import Simulator

ENVELOPE_KEYS = ["data", "eventType", "origin", "sessionId", "timestamp"]


def send(sim: Simulator, text: str = "hi", session_id: str = "s1") -> str:
    response = requests.post(f"{sim.url}/sessions/{session_id}/messages", timeout=5,
                             json={"to": TO, "type": "text", "text": text})
    assert response.status_code == 200, response.text
    return response.json()["data"]["messageId"]


# -- envelope and data of each event ------------------------------------------------------


def test_session_connected_is_posted_with_envelope_header_and_phone(sim, receiver):
    requests.post(f"{sim.url}/sessions", json={"sessionId": "s1"}, timeout=5)
    (post,) = receiver.wait_for("session.connected")
    assert post.path == "/hooks/zapw?token=t"
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["X-Webhook-Event"] == "session.connected"
    assert sorted(post.json) == ENVELOPE_KEYS
    assert (post.json["sessionId"], post.json["origin"]) == ("s1", "1234567890")
    assert abs(post.json["timestamp"] / 1000 - time.time()) < 5
    assert post.json["data"] == {"phoneNumber": "1234567890", "name": "Test User"}


def test_each_receipt_of_a_send_arrives_as_message_sent_without_status_like_real_zapw(
        simulators, receiver):
    """Server ack, delivered and read: zapw reads the wrong Baileys field for all three."""
    sim = simulators.start(webhook_url=receiver.url, delivered_delay=0.2, read_delay=0.4)
    connected(sim)
    message_id = send(sim)
    posts = sorted(receiver.wait_for("message.sent", count=3), key=lambda p: p.at)
    assert [(p.headers["X-Webhook-Event"], p.json["origin"], p.json["data"]) for p in posts] \
        == [("message.sent", "1234567890", {"messageId": message_id})] * 3
    assert posts[1].at - posts[0].at >= 0.1 and posts[2].at - posts[1].at >= 0.1
    assert [e["eventType"] for e in sim.events()] == ["message.sent"] * 3 + [
        "session.connected"]
    assert receiver.received("message.delivered") == receiver.received("message.read") == []


def test_the_mock_flavour_posts_no_receipt_at_all_after_a_send(simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, flavour="mock")
    connected(sim)
    send(sim)
    # Three times the last receipt's delay: any receipt would have been stored by then.
    holds(lambda: [e["eventType"] for e in sim.events()] == ["session.connected"],
          3 * sim.config.read_delay, what="no receipt")
    assert [p.event_type for p in receiver.wait_for("session.connected")] == [
        "session.connected"]
    assert receiver.received("message.sent") == []


@pytest.mark.parametrize(("status", "code"), [("sent", 2), ("delivered", 3), ("read", 4)])
def test_status_events_carry_their_status_code(simulators, receiver, status, code):
    sim = simulators.start(webhook_url=receiver.url, flavour="mock")  # no receipts of its own
    connected(sim)
    message_id = send(sim)
    sim.emit_status(message_id, status)
    (post,) = receiver.wait_for(f"message.{status}")
    assert post.json["data"] == {"messageId": message_id, "status": code}


def test_message_received_matches_the_contract_example(sim, receiver):
    connected(sim)
    sim.inject_inbound("s1", text="Hello there!", message_id="3EB0AAAA1111",
                       timestamp=1700000000000)
    (post,) = receiver.wait_for("message.received")
    assert (post.json["sessionId"], post.json["origin"]) == ("s1", "1234567890")
    assert post.json["data"] == {
        "from": "5511988887777@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
        "messageId": "3EB0AAAA1111", "timestamp": 1700000000000, "isGroup": False,
        "type": "text", "text": "Hello there!"}


def test_session_disconnected_carries_an_opaque_reason_object(sim, receiver):
    connected(sim)
    sim.disconnect("s1")
    (post,) = receiver.wait_for("session.disconnected")
    assert sorted(post.json["data"]) == ["reason"]
    assert isinstance(post.json["data"]["reason"], dict) and post.json["data"]["reason"]
    assert post.json["origin"] == "1234567890"


def test_origin_is_the_session_id_while_the_phone_is_not_known(simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, connect_delay=None)
    requests.post(f"{sim.url}/sessions", json={"sessionId": "s1"}, timeout=5)
    sim.disconnect("s1", reason={"message": "QR refs attempts ended"})
    (post,) = receiver.wait_for("session.disconnected")
    assert (post.json["origin"], post.json["data"]) == (
        "s1", {"reason": {"message": "QR refs attempts ended"}})


def test_a_numeric_session_id_travels_as_a_number_in_the_envelope(sim, receiver):
    requests.post(f"{sim.url}/sessions", json={"sessionId": 7}, timeout=5)
    (post,) = receiver.wait_for("session.connected")
    assert post.json["sessionId"] == 7


def test_deleting_a_session_posts_no_webhook(sim, receiver):
    connected(sim)
    receiver.wait_for("session.connected")
    requests.delete(f"{sim.url}/sessions/s1", timeout=5)
    connected(sim, "s2")  # a later event proves the delete had its chance to post one
    receiver.wait_for("session.connected", count=2)
    assert [p.event_type for p in receiver.received()] == ["session.connected"] * 2


def test_without_a_webhook_url_nothing_is_posted_but_events_are_kept(simulators, receiver):
    sim = simulators.start()
    connected(sim)
    send(sim)
    wait_until(lambda: len(sim.events()) == 4, timeout=5, what="the three receipts stored")
    assert [e["eventType"] for e in sim.events()] == ["message.sent"] * 3 + [
        "session.connected"]
    assert sim.webhook_deliveries() == []
    assert receiver.received() == []


def test_a_new_webhook_url_applies_to_later_events(simulators, receiver):
    sim = simulators.start()
    connected(sim, "before")
    sim.configure(webhook_url=receiver.url)
    connected(sim, "after")
    (post,) = receiver.wait_for("session.connected")
    assert post.json["sessionId"] == "after"


# -- delivery and retries ---------------------------------------------------------------------


def test_a_receiver_failing_twice_gets_three_deliveries_then_success(sim, receiver):
    receiver.answer_next(2, status=500)
    connected(sim)
    posts = receiver.wait_for("session.connected", count=3)
    assert [p.answered for p in posts] == [500, 500, 200]
    assert len({p.body for p in posts}) == 1  # the same event each time
    deliveries = wait_until(lambda: len(d := sim.webhook_deliveries()) == 3 and d, timeout=5)
    assert [(d.attempt, d.status_code, d.outcome) for d in deliveries] == [
        (1, 500, "retrying"), (2, 500, "retrying"), (3, 200, "delivered")]


def test_an_always_failing_receiver_gets_exactly_three_attempts_then_the_event_is_dropped(
        sim, receiver):
    receiver.default_status = 503
    connected(sim)
    dropped = wait_until(lambda: [d for d in sim.webhook_deliveries() if d.outcome == "dropped"],
                         timeout=5, what="event dropped")
    assert [(d.attempt, d.status_code) for d in dropped] == [(3, 503)]
    assert [p.answered for p in receiver.received()] == [503, 503, 503]
    connected(sim, "s2")  # later events still go out: the sender did not stall
    assert receiver.wait_for("session.connected", count=4)[-1].json["sessionId"] == "s2"


def test_a_4xx_answer_is_retried_like_a_5xx(sim, receiver):
    receiver.answer_next(1, status=401)
    connected(sim)
    assert [p.answered for p in receiver.wait_for("session.connected", count=2)] == [401, 200]


def test_retry_waits_grow_with_the_attempt_number(simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, webhook_retry_delay=0.15)
    receiver.answer_next(2, status=500)
    connected(sim)
    first, second, third = receiver.wait_for("session.connected", count=3)
    assert second.at - first.at >= 0.15
    assert third.at - second.at >= 0.30


def test_the_attempt_count_is_configurable(simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, webhook_attempts=5)
    receiver.default_status = 500
    connected(sim)
    wait_until(lambda: any(d.outcome == "dropped" for d in sim.webhook_deliveries()), timeout=5)
    assert [d.attempt for d in sim.webhook_deliveries()] == [1, 2, 3, 4, 5]


def test_an_answer_slower_than_the_timeout_is_retried_and_duplicates_the_event(
        simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, webhook_timeout=0.2)
    receiver.answer_next(1, status=200, delay=0.6)
    connected(sim)
    posts = receiver.wait_for("session.connected", count=2)
    assert posts[0].body == posts[1].body
    deliveries = wait_until(lambda: len(d := sim.webhook_deliveries()) == 2 and d, timeout=5)
    assert [(d.status_code, d.error, d.outcome) for d in deliveries] == [
        (None, "timeout", "retrying"), (200, None, "delivered")]
    wait_until(lambda: receiver.finished == 2, timeout=5, what="slow answer written")


def test_an_unreachable_receiver_is_recorded_as_connection_errors(simulators):
    sim = simulators.start(webhook_url=f"http://127.0.0.1:{free_port()}/hook",
                           webhook_attempts=2)
    connected(sim)
    deliveries = wait_until(lambda: len(d := sim.webhook_deliveries()) == 2 and d, timeout=5)
    assert [(d.status_code, d.error, d.outcome) for d in deliveries] == [
        (None, "ConnectionError", "retrying"), (None, "ConnectionError", "dropped")]


def test_events_are_delivered_concurrently_without_an_ordering_guarantee(simulators, receiver):
    # The later receipts of the send come long after the test: two posts in all.
    sim = simulators.start(webhook_url=receiver.url, delivered_delay=60, read_delay=60)
    receiver.answer_next(1, status=200, delay=1.0)
    connected(sim)
    receiver.wait_for("session.connected")  # arrived; its answer is held back for 1 s
    message_id = send(sim)
    wait_until(lambda: receiver.finished == 1, timeout=0.9, what="a later event answered first")
    assert receiver.received("message.sent")[0].json["data"]["messageId"] == message_id
    wait_until(lambda: receiver.finished == 2, timeout=5, what="slow answer written")
