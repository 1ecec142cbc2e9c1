"""The simulator answers as zapw does, row by row of /work/shared/zapw-contract.md.

Our own `BridgeClient` is used where it fits: its mapping of answers to our error classes
proves the simulator faithful end to end. Raw `requests` checks the quirks a client hides.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
import requests

from tests.helpers import wait_until
from tests.simulator.support import TO, Simulators, connected, holds
from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.errors import (
    BridgeInvalidRequest,
    BridgeServerError,
    BridgeUnauthorized,
    SessionAlreadyExists,
    SessionNotConnected,
    SessionNotFound,
)
from zapa_bridge.outbound.messages import MessageType, OutboundMessage, build_message
from zapa_bridge.simulator import Simulator

KEY = "secret-key"


@pytest.fixture
def sim(simulators: Simulators) -> Simulator:
    return simulators.start()


@pytest.fixture
def client(simulators: Simulators, sim: Simulator) -> BridgeClient:
    return simulators.client(sim)


def parse_iso(text: str) -> float:
    assert text.endswith("Z") and len(text) == 24, text  # toISOString: ms and a Z
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def send_raw(sim: Simulator, session_id: str, body: Any) -> requests.Response:
    return requests.post(f"{sim.url}/sessions/{session_id}/messages", json=body, timeout=5)


def message(**fields: Any) -> Any:
    """One of our validated outbound messages."""
    return build_message(session="s1", **fields)


def error_of(response: requests.Response) -> tuple[int, dict[str, Any]]:
    return response.status_code, response.json()


# -- health and the index page ------------------------------------------------------------


def test_health_is_a_bare_object_with_iso_timestamp_service_and_float_uptime(sim, client):
    response = requests.get(f"{sim.url}/health", timeout=5)
    body = response.json()
    assert response.status_code == 200
    assert sorted(body) == ["service", "status", "timestamp", "uptime"]
    assert (body["status"], body["service"]) == ("ok", "zapw")
    assert abs(parse_iso(body["timestamp"]) - time.time()) < 5
    assert isinstance(body["uptime"], float) and body["uptime"] >= 0
    health = client.health()
    assert (health.status, health.service) == ("ok", "zapw")


def test_index_page_is_small_open_html(simulators):
    sim = simulators.start(api_key=KEY)
    response = requests.get(f"{sim.url}/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "zapw" in response.text


# -- creating sessions ---------------------------------------------------------------------


def test_create_session_answers_201_with_a_qr_waiting_session_and_a_png_qr(sim):
    before = time.time()
    response = requests.post(f"{sim.url}/sessions", json={"sessionId": "s1"}, timeout=5)
    body = response.json()
    assert (response.status_code, body["status"]) == (201, "success")
    data = body["data"]
    assert sorted(data) == ["createdAt", "id", "qrCode", "qrExpiresAt", "status"]
    assert (data["id"], data["status"]) == ("s1", "qr_waiting")
    created, expires = parse_iso(data["createdAt"]), parse_iso(data["qrExpiresAt"])
    assert created >= before - 1
    assert expires - created == pytest.approx(60, abs=1)
    prefix = "data:image/png;base64,"
    assert data["qrCode"].startswith(prefix)
    png = base64.b64decode(data["qrCode"][len(prefix):], validate=True)
    assert 10_000 < len(png) < 100_000  # "tens of KB"
    assert_valid_png(png)


def assert_valid_png(png: bytes) -> None:
    """Signature, chunk CRCs, and image data that inflates to exactly its scanlines."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset:offset + 4])
        kind, data = png[offset + 4:offset + 8], png[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length:offset + 12 + length])
        assert zlib.crc32(kind + data) == crc
        chunks[kind] = chunks.get(kind, b"") + data
        offset += 12 + length
    kinds = list(chunks)
    assert (kinds[0], kinds[-1]) == (b"IHDR", b"IEND")
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (8, 0)
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (width + 1)


@pytest.mark.parametrize("body", [{}, {"sessionId": ""}, {"sessionId": None}],
                         ids=["missing", "empty", "null"])
def test_create_session_without_an_id_gets_a_uuid(sim, body):
    response = requests.post(f"{sim.url}/sessions", json=body, timeout=5)
    session_id = response.json()["data"]["id"]
    assert response.status_code == 201
    assert str(uuid.UUID(session_id)) == session_id


def test_create_session_through_our_client_gives_a_qr_waiting_session(client):
    session = client.create_session("s1")
    assert (session.id, session.status, session.connected) == ("s1", "qr_waiting", False)
    assert session.qr_code is not None and session.qr_expires_at is not None


def test_creating_an_existing_session_is_409_already_exists(sim, client):
    client.create_session("s1")
    response = requests.post(f"{sim.url}/sessions", json={"sessionId": "s1"}, timeout=5)
    assert error_of(response) == (409, {"status": "error", "error": "Session s1 already exists"})
    with pytest.raises(SessionAlreadyExists) as raised:
        client.create_session("s1")
    assert raised.value.status_code == 409


def test_a_numeric_session_id_is_kept_as_a_number_as_zapw_accepts_any_json_value(sim):
    response = requests.post(f"{sim.url}/sessions", json={"sessionId": 42}, timeout=5)
    assert (response.status_code, response.json()["data"]["id"]) == (201, 42)
    again = requests.post(f"{sim.url}/sessions", json={"sessionId": 42}, timeout=5)
    assert error_of(again) == (409, {"status": "error", "error": "Session 42 already exists"})


def test_a_form_encoded_body_is_read_as_express_urlencoded_does(sim):
    response = requests.post(f"{sim.url}/sessions", data={"sessionId": "form"}, timeout=5)
    assert (response.status_code, response.json()["data"]["id"]) == (201, "form")


def test_a_cors_preflight_is_204_without_a_key(simulators):
    sim = simulators.start(api_key=KEY)
    response = requests.options(f"{sim.url}/sessions", timeout=5)
    assert (response.status_code, response.headers["Access-Control-Allow-Origin"]) == (204, "*")


# -- session life cycle and reads ----------------------------------------------------------


def test_a_created_session_connects_after_the_delay_as_the_mock_phone(client):
    client.create_session("s1")
    session = wait_until(lambda: (s := client.get_session("s1")).connected and s, timeout=5,
                         what="s1 connected")
    assert (session.phone_number, session.name) == ("1234567890", "Test User")
    assert session.connected_at is not None
    assert (session.qr_code, session.qr_expires_at) == (None, None)


def test_a_session_waits_for_its_qr_scan_until_the_connect_delay_passes(simulators):
    sim = simulators.start(connect_delay=30)
    requests.post(f"{sim.url}/sessions", json={"sessionId": "s1"}, timeout=5)
    assert simulators.client(sim).get_session("s1").status == "qr_waiting"


def test_a_per_session_phone_number_is_used_when_configured(simulators):
    sim = simulators.start(phones={"s2": "5511911112222"})
    client = simulators.client(sim)
    client.create_session("s1")
    client.create_session("s2")
    wait_until(lambda: all(s.connected for s in client.list_sessions()), timeout=5,
               what="both connected")
    assert {s.id: s.phone_number for s in client.list_sessions()} == {
        "s1": "1234567890", "s2": "5511911112222"}


def test_list_sessions_returns_every_session_object_in_the_envelope(sim, client):
    connected(sim, "s1")
    client.create_session("s2")
    response = requests.get(f"{sim.url}/sessions", timeout=5)
    assert (response.status_code, response.json()["status"]) == (200, "success")
    assert [s["id"] for s in response.json()["data"]] == ["s1", "s2"]
    assert [s.id for s in client.list_sessions()] == ["s1", "s2"]


def test_session_objects_omit_absent_fields_instead_of_sending_null(simulators):
    sim = simulators.start(connect_delay=None)
    requests.post(f"{sim.url}/sessions", json={"sessionId": "waiting"}, timeout=5)
    connected(sim, "live")
    waiting = requests.get(f"{sim.url}/sessions/waiting", timeout=5).json()["data"]
    live = requests.get(f"{sim.url}/sessions/live", timeout=5).json()["data"]
    assert sorted(waiting) == ["createdAt", "id", "qrCode", "qrExpiresAt", "status"]
    assert sorted(live) == ["connectedAt", "createdAt", "id", "name", "phoneNumber", "status"]
    assert None not in waiting.values() and None not in live.values()


def test_getting_an_unknown_session_is_404_not_found(sim, client):
    response = requests.get(f"{sim.url}/sessions/ghost", timeout=5)
    assert error_of(response) == (404, {"status": "error", "error": "Session ghost not found"})
    with pytest.raises(SessionNotFound):
        client.get_session("ghost")


def test_an_expired_qr_is_refreshed_when_the_session_is_read(simulators):
    sim = simulators.start(connect_delay=None, qr_ttl=0.0)
    created = requests.post(f"{sim.url}/sessions", json={"sessionId": "s1"}, timeout=5)
    read = requests.get(f"{sim.url}/sessions/s1", timeout=5).json()["data"]
    assert read["status"] == "qr_waiting"
    assert read["qrCode"] != created.json()["data"]["qrCode"]
    assert parse_iso(read["qrExpiresAt"]) >= parse_iso(created.json()["data"]["qrExpiresAt"])


def test_refreshing_an_expired_qr_can_be_made_to_block_like_zapw(simulators):
    sim = simulators.start(connect_delay=None, qr_ttl=0.0)
    requests.post(f"{sim.url}/sessions", json={"sessionId": "s1"}, timeout=5)
    sim.set_faults(qr_refresh_delay=0.3)
    started = time.monotonic()
    assert requests.get(f"{sim.url}/sessions/s1", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_session_id_with_a_slash_round_trips_percent_encoded(sim, client):
    connected(sim, "team/a")
    assert client.get_session("team/a").id == "team/a"
    assert client.send("team/a", message(to=TO, text="hi")).status == "sent"


def test_delete_session_is_204_with_an_empty_body_and_the_session_is_gone(sim, client):
    connected(sim, "s1")
    response = requests.delete(f"{sim.url}/sessions/s1", timeout=5)
    assert (response.status_code, response.content) == (204, b"")
    assert "Content-Type" not in response.headers
    with pytest.raises(SessionNotFound):
        client.get_session("s1")


def test_delete_through_our_client_returns_quietly(sim, client):
    connected(sim, "s1")
    assert client.delete_session("s1") is None


def test_deleting_an_unknown_session_is_404(sim, client):
    response = requests.delete(f"{sim.url}/sessions/ghost", timeout=5)
    assert error_of(response) == (404, {"status": "error", "error": "Session ghost not found"})
    with pytest.raises(SessionNotFound):
        client.delete_session("ghost")


# -- sending ------------------------------------------------------------------------------


def test_an_accepted_send_answers_a_3eb0_message_id_epoch_ms_and_sent(sim, client):
    connected(sim)
    response = send_raw(sim, "s1", {"to": TO, "type": "text", "text": "hi"})
    data = response.json()["data"]
    assert (response.status_code, response.json()["status"]) == (200, "success")
    assert sorted(data) == ["messageId", "status", "timestamp"]
    assert data["messageId"].startswith("3EB0") and data["status"] == "sent"
    assert abs(data["timestamp"] / 1000 - time.time()) < 5
    receipt = client.send("s1", message(to=TO, text="again"))
    assert receipt.message_id.startswith("3EB0") and receipt.status == "sent"
    assert receipt.message_id != data["messageId"]


@pytest.mark.parametrize("fields", [
    {"type": "text", "text": "Hello"},
    {"type": "image", "mediaUrl": "https://example.com/img.jpg", "caption": "look"},
    {"type": "video", "mediaBase64": "AAAA"},
    {"type": "audio", "mediaUrl": "https://example.com/audio.mp3"},
    {"type": "document", "mediaUrl": "https://example.com/doc.pdf", "fileName": "doc.pdf"},
    {"type": "location", "latitude": 0, "longitude": 0},
    {"type": "contact", "contactName": "Ana", "contactNumber": "5511900000000"},
], ids=lambda fields: fields["type"])
def test_every_message_type_with_its_required_fields_is_accepted(sim, fields):
    connected(sim)
    response = send_raw(sim, "s1", {"to": TO, **fields})
    assert response.status_code == 200
    assert sim.sends("s1")[0].body == {"to": TO, **fields}


def test_our_validated_messages_of_every_kind_are_accepted(sim, client):
    connected(sim)
    messages = [
        message(to=TO, text="hi"),
        message(to=TO, type="image", media_url="https://example.com/a.jpg", caption="c"),
        message(to=TO, type="document", media_base64="SGVsbG8=", file_name="a.txt"),
        message(to=TO, type="location", latitude=-23.5, longitude=-46.6, name="SP"),
        message(to=TO, type="contact", contact_name="Ana", contact_number="5511900000000"),
    ]
    assert [client.send("s1", m).status for m in messages] == ["sent"] * len(messages)


@pytest.mark.parametrize(("body", "text"), [
    ({"type": "text", "text": "hi"}, 'Recipient "to" is required'),
    ({"to": "", "type": "text", "text": "hi"}, 'Recipient "to" is required'),
    ({"text": "hi"}, 'Recipient "to" is required'),
    ({"to": TO, "text": "hi"}, "Message type is required"),
    ({"to": TO, "type": "text"}, "Text is required for text messages"),
    ({"to": TO, "type": "text", "text": ""}, "Text is required for text messages"),
    ({"to": TO, "type": "image", "caption": "no media"}, "Media URL or base64 is required"),
    ({"to": TO, "type": "document", "mediaUrl": "https://example.com/a.pdf"},
     "File name is required for documents"),
    ({"to": TO, "type": "location", "latitude": 1},
     "Latitude and longitude are required for location messages"),
    ({"to": TO, "type": "contact", "contactName": "Ana"},
     "Contact name and number are required for contact messages"),
], ids=["no-to", "empty-to", "no-to-nor-type", "no-type", "no-text", "empty-text", "no-media",
        "no-file-name", "no-longitude", "no-contact-number"])
def test_invalid_sends_are_400_with_zapw_texts(sim, client, body, text):
    connected(sim)
    assert error_of(send_raw(sim, "s1", body)) == (400, {"status": "error", "error": text})
    assert sim.sends() == []


def test_validation_happens_before_the_session_lookup(sim):
    response = send_raw(sim, "ghost", {"to": TO, "type": "text"})
    assert error_of(response) == (400, {"status": "error",
                                        "error": "Text is required for text messages"})


def test_our_client_maps_a_validation_answer_to_invalid_request(sim, client):
    connected(sim)
    with pytest.raises(BridgeInvalidRequest) as raised:
        client.send("s1", OutboundMessage(to=TO, type=MessageType.DOCUMENT,
                                          media_url="https://example.com/a.pdf"))
    assert (raised.value.status_code, str(raised.value)) == (
        400, "File name is required for documents")


@pytest.mark.parametrize("kind", [None, "", 0, False, "absent"],
                         ids=["null", "empty", "zero", "false", "absent"])
def test_a_missing_or_empty_type_is_400_type_required_before_the_session_lookup(sim, kind):
    body = {"to": TO, "text": "hi"} if kind == "absent" else {"to": TO, "type": kind,
                                                              "text": "hi"}
    assert error_of(send_raw(sim, "ghost", body)) == (
        400, {"status": "error", "error": "Message type is required"})


@pytest.mark.parametrize("body", [{"to": TO, "type": "sticker"},
                                  {"to": TO, "type": ["text"], "text": "hi"}],
                         ids=["unknown", "not-a-string"])
def test_an_unknown_type_is_500_failed_to_send_message(sim, body):
    connected(sim)
    assert error_of(send_raw(sim, "ghost", body)) == (
        500, {"status": "error", "error": "Failed to send message"})


def test_sending_through_an_unknown_session_is_404(sim, client):
    response = send_raw(sim, "ghost", {"to": TO, "type": "text", "text": "hi"})
    assert error_of(response) == (404, {"status": "error", "error": "Session ghost not found"})
    with pytest.raises(SessionNotFound):
        client.send("ghost", message(to=TO, text="hi"))


def test_sending_while_the_qr_is_not_scanned_is_400_session_not_connected(simulators):
    sim = simulators.start(connect_delay=None)
    client = simulators.client(sim)
    client.create_session("s1")
    response = send_raw(sim, "s1", {"to": TO, "type": "text", "text": "hi"})
    assert error_of(response) == (400, {"status": "error", "error": "Session not connected"})
    with pytest.raises(SessionNotConnected):
        client.send("s1", message(to=TO, text="hi"))


def test_concurrent_sends_are_served_in_parallel_and_all_recorded(simulators):
    sim = simulators.start()
    sim.set_faults(latency_ms=200)
    connected(sim)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda i: send_raw(sim, "s1", {
            "to": TO, "type": "text", "text": f"n{i}"}).status_code, range(20)))
    assert answers == [200] * 20
    assert time.monotonic() - started < 2.0  # 20 x 200 ms one after another would be 4 s
    assert sorted(s.body["text"] for s in sim.sends()) == sorted(f"n{i}" for i in range(20))


# -- events ---------------------------------------------------------------------------------


def test_events_lists_the_last_ten_emitted_events_newest_first_without_origin(sim):
    connected(sim)
    ids = [sim.inject_inbound("s1", text=str(i))["data"]["messageId"] for i in range(11)]
    response = requests.get(f"{sim.url}/events", timeout=5)
    events = response.json()["data"]
    assert (response.status_code, response.json()["status"], len(events)) == (200, "success", 10)
    assert [e["data"]["messageId"] for e in events] == ids[::-1][:10]
    assert sorted(events[0]) == ["data", "eventType", "id", "sessionId", "timestamp"]
    assert (events[0]["id"], events[0]["eventType"]) == ("evt_12", "message.received")
    assert events[-1]["id"] == "evt_3"  # session.connected and the first message fell off
    assert abs(events[0]["timestamp"] / 1000 - time.time()) < 5


def test_events_are_kept_whether_the_webhook_failed_or_there_is_no_url(simulators, receiver):
    failing = simulators.start(webhook_url=receiver.url, webhook_attempts=1)
    receiver.default_status = 503
    silent = simulators.start()
    for sim in (failing, silent):
        connected(sim)
        sim.inject_inbound("s1", text="kept")
    wait_until(lambda: [d.outcome for d in failing.webhook_deliveries()] == ["dropped"] * 2,
               timeout=5, what="both webhooks dropped")
    for sim in (failing, silent):
        events = requests.get(f"{sim.url}/events", timeout=5).json()["data"]
        assert [e["eventType"] for e in events] == ["message.received", "session.connected"]
    assert silent.webhook_deliveries() == []


def test_with_webhooks_disabled_nothing_is_posted_to_the_url_but_every_event_is_listed(
        simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, webhooks_enabled=False)
    connected(sim)
    sim.inject_inbound("s1", text="unposted")
    events = requests.get(f"{sim.url}/events", timeout=5).json()["data"]
    assert [e["eventType"] for e in events] == ["message.received", "session.connected"]
    holds(lambda: receiver.received() == [], 0.3, "no post")
    assert sim.webhook_deliveries() == []


def test_webhooks_can_be_enabled_again_at_run_time(simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, webhooks_enabled=False)
    connected(sim)
    sim.configure(webhooks_enabled=True)
    sim.inject_inbound("s1", text="posted")
    (post,) = receiver.wait_for("message.received")
    assert post.json["data"]["text"] == "posted"
    assert receiver.received("session.connected") == []  # emitted while disabled
    with pytest.raises(ValueError, match="webhooks_enabled"):
        sim.configure(webhooks_enabled="yes")


def test_an_event_is_stored_with_its_own_timestamp_close_to_the_webhooks(simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url)
    connected(sim)
    sim.inject_inbound("s1", text="when")
    (post,) = receiver.wait_for("message.received")
    (stored,) = [e for e in sim.events() if e["eventType"] == "message.received"]
    assert abs(stored["timestamp"] - post.json["timestamp"]) < 1000
    assert stored["data"] == post.json["data"]


def test_delete_events_answers_success_without_data_and_empties_the_list(sim):
    connected(sim)
    response = requests.delete(f"{sim.url}/events", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "success"})
    assert requests.get(f"{sim.url}/events", timeout=5).json() == {"status": "success",
                                                                  "data": []}
    sim.inject_inbound("s1", text="after")
    assert [e["id"] for e in sim.events()] == ["evt_2"]  # the counter is not reset


def test_delete_events_is_behind_the_api_key(simulators):
    sim = simulators.start(api_key=KEY)
    connected(sim)
    response = requests.delete(f"{sim.url}/events", timeout=5)
    assert response.status_code == 401
    assert len(sim.events()) == 1


# -- envelope exceptions: malformed JSON, unknown routes, the API key -------------------------


def test_a_malformed_json_body_is_500_in_express_error_shape(sim):
    response = requests.post(f"{sim.url}/sessions/s1/messages", data="{not json",
                             headers={"Content-Type": "application/json"}, timeout=5)
    assert error_of(response) == (500, {"error": "Internal Server Error",
                                        "message": "An unexpected error occurred",
                                        "statusCode": 500})


def test_a_malformed_json_body_is_500_even_before_the_api_key_check(simulators):
    sim = simulators.start(api_key=KEY)
    response = requests.post(f"{sim.url}/sessions", data="[1,", timeout=5,
                             headers={"Content-Type": "application/json"})
    assert error_of(response) == (500, EXPRESS_500)


EXPRESS_500 = {"error": "Internal Server Error", "message": "An unexpected error occurred",
               "statusCode": 500}
BODY_LIMIT = 102_400


def send_body_of(size: int) -> bytes:
    """A valid text send whose JSON body is exactly `size` bytes."""
    frame = f'{{"to":"{TO}","type":"text","text":""}}'
    return frame.replace('"text":""', '"text":"' + "x" * (size - len(frame)) + '"').encode()


def test_a_json_body_of_exactly_100_kb_is_sent_and_one_byte_more_is_a_bare_500(sim):
    connected(sim)
    headers = {"Content-Type": "application/json"}
    url = f"{sim.url}/sessions/s1/messages"
    at_limit = requests.post(url, data=send_body_of(BODY_LIMIT), headers=headers, timeout=5)
    assert at_limit.status_code == 200
    over = requests.post(url, data=send_body_of(BODY_LIMIT + 1), headers=headers, timeout=5)
    assert error_of(over) == (500, EXPRESS_500)
    assert len(sim.sends()) == 1


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/sessions/s1/messages"), ("POST", "/sessions"), ("GET", "/health"),
    ("GET", "/events"), ("DELETE", "/sessions/s1"), ("GET", "/nope"),
])
def test_a_body_over_100_kb_is_a_bare_500_on_every_route_before_the_api_key_check(
        simulators, method, path):
    sim = simulators.start(api_key=KEY)
    connected(sim)
    response = requests.request(method, sim.url + path, data=send_body_of(BODY_LIMIT + 1),
                                headers={"Content-Type": "application/json"}, timeout=5)
    assert error_of(response) == (500, EXPRESS_500)
    assert sim.session("s1") is not None  # nothing was done


def test_a_chunked_json_body_over_100_kb_is_refused_too(sim):
    connected(sim)
    body = send_body_of(BODY_LIMIT + 1)
    chunks = (body[i:i + 10_000] for i in range(0, len(body), 10_000))
    response = requests.post(f"{sim.url}/sessions/s1/messages", data=chunks, timeout=5,
                             headers={"Content-Type": "application/json"})
    assert error_of(response) == (500, EXPRESS_500)
    assert sim.sends() == []


def test_a_form_body_over_100_kb_is_refused_as_express_urlencoded_does(sim):
    response = requests.post(f"{sim.url}/sessions", timeout=5,
                             data={"sessionId": "s1", "pad": "x" * BODY_LIMIT})
    assert error_of(response) == (500, EXPRESS_500)
    assert sim.session("s1") is None


def test_a_large_body_of_another_type_is_not_read_at_all(sim):
    response = requests.post(f"{sim.url}/sessions", data=b"x" * (2 * BODY_LIMIT), timeout=5,
                             headers={"Content-Type": "text/plain"})
    assert response.status_code == 201  # no parser ran: a session with a UUID id


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/nope"), ("PUT", "/sessions"), ("GET", "/sessions/s1/media/3EB0AAAA"),
    ("POST", "/health"),
])
def test_unknown_routes_get_express_html_404(sim, method, path):
    response = requests.request(method, sim.url + path, timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert f"<pre>Cannot {method} {path}</pre>" in response.text


def test_express_routing_ignores_case_and_one_trailing_slash(sim):
    connected(sim)
    assert requests.get(f"{sim.url}/sessions/", timeout=5).status_code == 200
    assert requests.get(f"{sim.url}/SESSIONS/s1", timeout=5).json()["data"]["id"] == "s1"


@pytest.mark.parametrize(("method", "path"), [("GET", "/sessions"), ("POST", "/sessions"),
                                              ("GET", "/events"), ("GET", "/nope")])
def test_without_a_key_every_route_but_health_and_index_is_401_without_status(
        simulators, method, path):
    sim = simulators.start(api_key=KEY)
    response = requests.request(method, sim.url + path, json={}, timeout=5)
    assert error_of(response) == (401, {"error": "Unauthorized",
                                        "message": "API key is required"})


def test_health_stays_open_when_an_api_key_is_set(simulators):
    sim = simulators.start(api_key=KEY)
    assert requests.get(f"{sim.url}/health", timeout=5).status_code == 200
    assert simulators.client(sim).health().status == "ok"


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}],
                         ids=["bearer", "x-api-key"])
def test_a_wrong_key_is_401_invalid_in_either_header(simulators, headers):
    sim = simulators.start(api_key=KEY)
    response = requests.get(f"{sim.url}/sessions", headers=headers, timeout=5)
    assert error_of(response) == (401, {"error": "Unauthorized", "message": "Invalid API key"})


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}],
                         ids=["bearer", "x-api-key"])
def test_the_right_key_is_accepted_in_either_header(simulators, headers):
    sim = simulators.start(api_key=KEY)
    response = requests.get(f"{sim.url}/sessions", headers=headers, timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "success", "data": []})


def test_our_client_maps_401_to_unauthorized_and_works_with_the_key(simulators):
    sim = simulators.start(api_key=KEY)
    with pytest.raises(BridgeUnauthorized) as raised:
        simulators.client(sim).list_sessions()
    assert raised.value.status_code == 401
    assert simulators.client(sim, api_key=KEY).list_sessions() == []


def test_our_client_maps_a_send_failure_to_a_server_error(sim, client):
    connected(sim)
    sim.set_faults(failure_rate=1.0)
    with pytest.raises(BridgeServerError) as raised:
        client.send("s1", message(to=TO, text="hi"))
    assert (raised.value.status_code, str(raised.value)) == (500, "Failed to send message")
