"""The simulator's control API (/_sim/) and its Python twin play WhatsApp's and ops' parts.

Inbound messages of each kind, receipts, dropped sessions, faults (failures, latency,
refused connections, stuck sessions) and the record of accepted sends; restarts have
their own module.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from tests.helpers import wait_until
from tests.simulator.support import TO, Simulators, connected, holds, post_json
from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.errors import (
    BridgeServerError,
    BridgeTimeout,
    BridgeUnreachable,
    SessionNotConnected,
)
from zapa_bridge.outbound.messages import build_message
from zapa_bridge.simulator import Inbound, Simulator

FROM = "5511977776666"
OWN = "1234567890:1@s.whatsapp.net"


@pytest.fixture
def client(simulators: Simulators, sim: Simulator) -> BridgeClient:
    return simulators.client(sim)


def message(text: str = "hi") -> Any:
    return build_message(session="s1", to=TO, text=text)


def control(sim: Simulator, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, f"{sim.url}/_sim{path}", json=body, timeout=5)


# -- inbound messages -----------------------------------------------------------------------

BASE = {"from": f"{FROM}@s.whatsapp.net", "to": OWN, "messageId": "3EB0FEED", "timestamp": 17,
        "isGroup": False}


@pytest.mark.parametrize(("spec", "expected"), [
    ({"type": "text", "text": "oi"}, {**BASE, "type": "text", "text": "oi"}),
    ({"type": "image", "caption": "look"},
     {**BASE, "type": "image", "caption": "look", "hasMedia": True}),
    ({"type": "video"}, {**BASE, "type": "video", "hasMedia": True}),
    ({"type": "audio"}, {**BASE, "type": "audio", "hasMedia": True}),
    ({"type": "document", "file_name": "a.pdf", "caption": "the file"},
     {**BASE, "type": "document", "caption": "the file", "hasMedia": True,
      "fileName": "a.pdf"}),
    ({"type": "location", "latitude": -23.5, "longitude": 0, "location_name": "SP",
      "address": "Av. Paulista"},
     {**BASE, "type": "location", "location": {"latitude": -23.5, "longitude": 0,
                                               "name": "SP", "address": "Av. Paulista"}}),
    ({"type": "contact", "contact_name": "Ana", "contact_number": "5511900000000"},
     {**BASE, "type": "contact", "contact": {"name": "Ana", "number": "5511900000000"}}),
    ({"type": "text", "text": "all", "group": "120363000000000001"},
     {**BASE, "isGroup": True, "groupId": "120363000000000001@g.us", "type": "text",
      "text": "all"}),
    ({"type": "sticker"}, BASE),
], ids=["text", "image", "video", "audio", "document", "location", "contact", "group",
        "sticker"])
def test_each_inbound_kind_is_posted_as_message_received(sim, receiver, spec, expected):
    connected(sim)
    body = {"sender": FROM, "message_id": "3EB0FEED", "timestamp": 17, **spec}
    response = control(sim, "POST", "/sessions/s1/inbound", body)
    assert response.status_code == 200
    assert (response.json()["eventType"], response.json()["data"]) == (
        "message.received", expected)
    (post,) = receiver.wait_for("message.received")
    assert post.json == response.json()


def test_inbound_from_python_fills_id_time_and_default_sender(sim):
    connected(sim)
    event = sim.inject_inbound("s1", Inbound(type="text", text="oi"))
    data = event["data"]
    assert data["messageId"].startswith("3EB0") and abs(data["timestamp"] / 1000
                                                        - time.time()) < 5
    assert (data["from"], data["to"]) == ("5511988887777@s.whatsapp.net", OWN)
    assert sim.inject_inbound("s1", text="kw")["data"]["text"] == "kw"


def test_inbound_uses_the_session_phone_and_device_in_to(simulators):
    sim = simulators.start(phones={"s1": "5511955554444"}, device=7)
    connected(sim)
    assert sim.inject_inbound("s1", text="oi")["data"]["to"] == "5511955554444:7@s.whatsapp.net"


def test_inbound_on_an_unknown_or_disconnected_session_is_refused(sim):
    assert control(sim, "POST", "/sessions/ghost/inbound", {"text": "x"}).status_code == 404
    connected(sim)
    sim.disconnect("s1")
    response = control(sim, "POST", "/sessions/s1/inbound", {"text": "x"})
    assert (response.status_code, response.json()) == (
        409, {"error": "session s1 is not connected"})


@pytest.mark.parametrize(("body", "field"), [({"text": "x", "colour": "red"}, "colour"),
                                             ({"type": "text"}, "text"),
                                             ({"type": "location", "latitude": 1}, "latitude"),
                                             ({"text": 5}, "text")])
def test_a_bad_inbound_spec_is_400_naming_the_field(sim, body, field):
    connected(sim)
    response = control(sim, "POST", "/sessions/s1/inbound", body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:")


# -- receipts ---------------------------------------------------------------------------------


def test_auto_statuses_act_as_a_fixed_zapw_posting_sent_delivered_then_read(
        simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, auto_status=("delivered", "read"))
    connected(sim)
    receipt = simulators.client(sim).send("s1", message())
    delivered = receiver.wait_for("message.delivered")[0].json
    read = receiver.wait_for("message.read")[0].json
    (sent,) = receiver.wait_for("message.sent")
    assert sent.json["data"] == {"messageId": receipt.message_id, "status": 2}
    assert delivered["data"] == {"messageId": receipt.message_id, "status": 3}
    assert read["data"] == {"messageId": receipt.message_id, "status": 4}
    assert sent.json["timestamp"] <= delivered["timestamp"] <= read["timestamp"]


def test_auto_status_can_be_switched_on_at_run_time_through_config(sim, receiver, client):
    response = control(sim, "PUT", "/config", {"auto_status": ["delivered"]})
    assert response.json()["auto_status"] == ["delivered"]
    connected(sim)
    receipt = client.send("s1", message())
    assert receiver.wait_for("message.delivered")[0].json["data"]["messageId"] == \
        receipt.message_id
    assert receiver.received("message.read") == []


def test_a_status_is_emitted_for_a_sent_message_by_its_id(sim, receiver, client):
    connected(sim)
    receipt = client.send("s1", message())
    response = control(sim, "POST", f"/messages/{receipt.message_id}/status", {"status": "read"})
    assert (response.status_code, response.json()["data"]) == (
        200, {"messageId": receipt.message_id, "status": 4})
    assert receiver.wait_for("message.read")[0].json["sessionId"] == "s1"


def test_a_status_for_an_unknown_message_needs_its_session(sim):
    connected(sim)
    assert control(sim, "POST", "/messages/3EB0NOPE/status",
                   {"status": "read"}).status_code == 404
    response = control(sim, "POST", "/messages/3EB0NOPE/status",
                       {"status": "delivered", "session_id": "s1"})
    assert response.json()["data"] == {"messageId": "3EB0NOPE", "status": 3}
    assert control(sim, "POST", "/messages/3EB0NOPE/status",
                   {"status": "lost", "session_id": "s1"}).status_code == 400


# -- connection state ---------------------------------------------------------------------------


def test_a_disconnected_session_refuses_sends_until_it_connects_again(sim, receiver, client):
    connected(sim)
    response = control(sim, "POST", "/sessions/s1/disconnect", {})
    assert response.json()["eventType"] == "session.disconnected"
    assert client.get_session("s1").status == "disconnected"
    with pytest.raises(SessionNotConnected):
        client.send("s1", message())
    response = control(sim, "POST", "/sessions/s1/connect", {})
    assert response.json()["data"] == {"phoneNumber": "1234567890", "name": "Test User"}
    assert client.send("s1", message()).status == "sent"
    receiver.wait_for("session.connected", count=2)
    assert receiver.wait_for("session.disconnected")[0].json["sessionId"] == "s1"


def test_a_dropped_session_stays_disconnected_with_no_automatic_reconnect(sim, receiver,
                                                                        client):
    connected(sim)
    sim.disconnect("s1")
    # Many times every delay after which the simulator does something by itself.
    config = sim.config
    longest = max(config.connect_delay or 0, config.restore_delay, config.read_delay)
    holds(lambda: client.get_session("s1").status == "disconnected", 5 * longest,
          what="s1 disconnected")
    receiver.wait_for("session.disconnected")
    assert len(receiver.received("session.connected")) == 1  # only the first connection
    with pytest.raises(SessionNotConnected):
        client.send("s1", message())


def test_connect_scans_the_qr_of_a_session_that_never_connects_by_itself(simulators):
    sim = simulators.start(connect_delay=None)
    client = simulators.client(sim)
    client.create_session("s1")
    event = sim.connect("s1", phone="5511933332222", name="Ops")
    assert event["origin"] == "5511933332222"
    session = client.get_session("s1")
    assert (session.status, session.phone_number, session.name) == (
        "connected", "5511933332222", "Ops")


def test_a_forced_not_connected_session_answers_400_while_it_looks_connected(sim, client):
    connected(sim)
    connected(sim, "s2")
    control(sim, "PUT", "/faults", {"not_connected": ["s1"]})
    assert client.get_session("s1").connected
    with pytest.raises(SessionNotConnected):
        client.send("s1", message())
    assert client.send("s2", message()).status == "sent"


# -- faults ---------------------------------------------------------------------------------


def test_failure_rate_one_fails_every_send_and_records_none(sim, client):
    connected(sim)
    response = control(sim, "PUT", "/faults", {"failure_rate": 1.0})
    assert response.json()["failure_rate"] == 1.0
    for _ in range(5):
        with pytest.raises(BridgeServerError):
            client.send("s1", message())
    assert sim.sends() == []


def test_a_failing_text_fails_that_many_matching_sends_and_no_other(sim, client):
    connected(sim)
    faults = control(sim, "PUT", "/faults", {"failing_text": "part two", "failing_text_times": 2,
                                             "failure_status": 500}).json()
    assert (faults["failing_text"], faults["failing_text_times"]) == ("part two", 2)
    assert client.send("s1", message("part one")).status == "sent"
    for _ in range(2):
        with pytest.raises(BridgeServerError):
            client.send("s1", message("this is part two"))
    assert client.send("s1", message("this is part two")).status == "sent"
    assert sim.set_faults().failing_text_times == 0
    assert [send.body["text"] for send in sim.sends()] == ["part one", "this is part two"]


def test_failing_text_times_must_be_a_whole_number(sim):
    answer = control(sim, "PUT", "/faults", {"failing_text_times": -1})
    assert answer.status_code == 400
    assert "failing_text_times" in answer.text


def test_failure_rate_zero_accepts_every_send(sim, client):
    connected(sim)
    sim.set_faults(failure_rate=0.0)
    assert [client.send("s1", message()).status for _ in range(5)] == ["sent"] * 5
    assert len(sim.sends()) == 5


def test_a_partial_failure_rate_fails_about_that_share(simulators):
    sim = simulators.start()
    connected(sim)
    sim.set_faults(failure_rate=0.5)
    codes = [post_json(f"{sim.url}/sessions/s1/messages",
                       {"to": TO, "type": "text", "text": "x"}).status_code for _ in range(200)]
    assert set(codes) == {200, 500}
    assert 60 <= codes.count(500) <= 140
    assert len(sim.sends()) == codes.count(200)


def test_the_failure_answer_can_be_chosen(sim):
    connected(sim)
    sim.set_faults(failure_rate=1, failure_status=503, failure_error="Service Unavailable")
    response = post_json(f"{sim.url}/sessions/s1/messages", {"to": TO, "type": "text",
                                                             "text": "x"})
    assert (response.status_code, response.json()) == (
        503, {"status": "error", "error": "Service Unavailable"})


def test_latency_delays_each_send_answer(sim, client):
    connected(sim)
    sim.set_faults(latency_ms=300)
    started = time.monotonic()
    client.send("s1", message())
    assert time.monotonic() - started >= 0.3


def test_a_send_slower_than_the_client_timeout_may_still_have_been_sent(simulators):
    sim = simulators.start()
    connected(sim)
    sim.set_faults(latency_ms=800)
    with pytest.raises(BridgeTimeout):
        simulators.client(sim, timeout=0.2).send("s1", message())
    assert len(sim.sends()) == 1


def test_an_empty_message_id_fault_answers_an_empty_id(sim, client):
    connected(sim)
    sim.set_faults(empty_message_id=True)
    assert client.send("s1", message()).message_id == ""


def test_a_qr_timeout_fault_makes_create_session_fail_with_500_after_blocking(sim, client):
    sim.set_faults(qr_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(BridgeServerError) as raised:
        client.create_session("s1")
    assert time.monotonic() - started >= 0.2
    assert str(raised.value) == "Timeout waiting for QR code"
    assert client.get_session("s1").status == "initializing"


def test_refusing_connections_closes_the_port_then_listens_again_on_it(sim, client):
    connected(sim)
    port = sim.port
    response = control(sim, "POST", "/refuse", {"seconds": 0.5})
    assert (response.status_code, response.json()) == (202, {"refusing_for": 0.5})
    # A request caught while the socket closes may be reset instead: wait for a clean refusal.
    refused = wait_until(lambda: (error := _refusal(client)) and "refused" in str(error)
                         and error, timeout=2, what="connection refused")
    assert not refused.maybe_sent
    with pytest.raises(requests.ConnectionError):
        control(sim, "GET", "/config")  # the control API goes down with the port
    back = wait_until(lambda: _refusal(client) is None and client.health(), timeout=5,
                      what="listening again")
    assert (back.status, sim.port) == ("ok", port)
    assert client.get_session("s1").connected


def test_refusing_cuts_a_request_in_flight_after_its_send_was_accepted(sim, client):
    connected(sim)
    sim.set_faults(latency_ms=800)
    cut = threading.Timer(0.2, sim.refuse_connections, args=(0.2,))
    cut.start()
    with pytest.raises(BridgeUnreachable) as raised:
        client.send("s1", message())
    cut.join()
    assert raised.value.maybe_sent
    assert len(sim.sends()) == 1
    wait_until(lambda: sim.open_connections() == 0, timeout=5, what="the cut handler ends")
    assert wait_until(lambda: _refusal(client) is None, timeout=5, what="listening again")


def test_a_graceful_refusal_answers_the_request_in_flight_then_refuses(sim, client):
    """The bridge stops cleanly: a send it is handling is answered, so none is half-done."""
    connected(sim)
    sim.set_faults(latency_ms=800)
    cut = threading.Timer(0.2, sim.refuse_connections, args=(0.5,),
                          kwargs={"graceful": True})
    cut.start()
    receipt = client.send("s1", message())
    cut.join()
    assert [send.message_id for send in sim.sends()] == [receipt.message_id]
    wait_until(lambda: (error := _refusal(client)) and "refused" in str(error), timeout=3,
               what="connection refused")
    assert wait_until(lambda: _refusal(client) is None, timeout=5, what="listening again")


def test_graceful_must_be_true_or_false(sim):
    response = control(sim, "POST", "/refuse", {"seconds": 1, "graceful": "yes"})
    assert (response.status_code, response.json()) == (
        400, {"error": "graceful: must be true or false"})


def _refusal(client: BridgeClient) -> BridgeUnreachable | None:
    """The error a health check meets now, or None if the bridge answers."""
    try:
        client.health()
    except BridgeUnreachable as error:
        return error
    return None


# -- records, reset, settings ----------------------------------------------------------------


def test_accepted_sends_are_recorded_with_session_body_id_and_time(sim, client):
    connected(sim)
    connected(sim, "s2")
    before = time.time()
    first = client.send("s1", message("one"))
    client.send("s2", build_message(session="s2", to=TO, text="two"))
    sends = control(sim, "GET", "/sends").json()
    assert [(s["sessionId"], s["body"]["text"]) for s in sends] == [("s1", "one"), ("s2", "two")]
    assert sends[0]["messageId"] == first.message_id
    assert sends[0]["timestamp"] == first.timestamp and sends[0]["at"] >= before
    only_s2 = control(sim, "GET", "/sends?session_id=s2").json()
    assert [s["body"] for s in only_s2] == [{"to": TO, "type": "text", "text": "two"}]
    assert [s.body["text"] for s in sim.sends("s1")] == ["one"]


def test_refused_sends_are_not_recorded(sim, client):
    connected(sim)
    post_json(f"{sim.url}/sessions/s1/messages", {"to": TO, "type": "text"})
    post_json(f"{sim.url}/sessions/ghost/messages", {"to": TO, "type": "text", "text": "x"})
    assert control(sim, "GET", "/sends").json() == []


def test_webhook_deliveries_are_listed_by_the_control_api(sim, receiver):
    connected(sim)
    receiver.wait_for("session.connected")
    deliveries = wait_until(lambda: control(sim, "GET", "/webhooks").json(), timeout=5)
    assert [(d["eventType"], d["attempt"], d["statusCode"], d["outcome"]) for d in deliveries] \
        == [("session.connected", 1, 200, "delivered")]
    assert control(sim, "GET", "/webhooks?event_type=message.sent").json() == []


def test_reset_forgets_sessions_sends_events_and_faults(sim, client):
    connected(sim)
    client.send("s1", message())
    sim.set_faults(latency_ms=5)
    assert control(sim, "POST", "/reset").json() == {"reset": True}
    assert (client.list_sessions(), sim.sends(), sim.events()) == ([], [], [])
    assert sim.set_faults().latency_ms == 0


def test_config_reads_and_changes_at_run_time(sim):
    config = control(sim, "GET", "/config").json()
    assert (config["phone"], config["connect_delay"], config["webhook_attempts"]) == (
        "1234567890", 0.05, 3)
    changed = control(sim, "PUT", "/config", {"phone": "5511900001111", "connect_delay": None,
                                              "phones": {"s9": "5511900009999"}}).json()
    assert (changed["phone"], changed["connect_delay"]) == ("5511900001111", None)
    assert sim.config.phones == {"s9": "5511900009999"}
    assert connected(sim, "s1")["phoneNumber"] == "5511900001111"


@pytest.mark.parametrize("body", [{"port": 1}, {"connect_delay": -1}, {"auto_status": ["sent"]},
                                  {"webhook_attempts": 0}, {"flavour": "fixed"},
                                  {"restore_delay": -1}])
def test_a_bad_config_change_is_400_and_changes_nothing(sim, body):
    response = control(sim, "PUT", "/config", body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(next(iter(body)))
    assert control(sim, "GET", "/config").json()["webhook_attempts"] == 3


def test_faults_read_change_and_clear(sim):
    assert control(sim, "GET", "/faults").json()["failure_rate"] == 0.0
    changed = control(sim, "PUT", "/faults", {"latency_ms": 10, "not_connected": ["s1"]}).json()
    assert (changed["latency_ms"], changed["not_connected"]) == (10.0, ["s1"])
    assert control(sim, "PUT", "/faults", {"failure_rate": 2}).status_code == 400
    assert control(sim, "DELETE", "/faults").json()["not_connected"] == []


def test_the_control_api_is_not_behind_the_api_key(simulators):
    sim = simulators.start(api_key="k")
    assert control(sim, "GET", "/config").status_code == 200
    assert requests.get(f"{sim.url}/sessions", timeout=5).status_code == 401


def test_an_unknown_control_route_is_a_json_404(sim):
    response = control(sim, "GET", "/nope")
    assert (response.status_code, response.json()) == (
        404, {"error": "no control route GET /_sim/nope"})


def test_add_session_through_the_control_api_connects_it_at_once(sim, receiver):
    response = control(sim, "POST", "/sessions", {"session_id": "s1"})
    assert (response.status_code, response.json()["status"]) == (201, "connected")
    assert receiver.wait_for("session.connected")[0].json["sessionId"] == "s1"
