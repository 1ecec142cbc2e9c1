"""BridgeClient against zapw's real answers, faked at the transport with `responses`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from zapa_bridge.bridge.client import (
    CREATE_SESSION_TIMEOUT,
    GET_SESSION_TIMEOUT,
    BridgeClient,
    BridgeHealth,
    SendReceipt,
    SessionInfo,
    StoredEvent,
)
from zapa_bridge.config import Settings
from zapa_bridge.errors import (
    BridgeError,
    BridgeInvalidRequest,
    BridgeRejectedBody,
    BridgeServerError,
    BridgeTimeout,
    BridgeUnauthorized,
    BridgeUnreachable,
    SessionAlreadyExists,
    SessionNotConnected,
    SessionNotFound,
    UnexpectedBridgeResponse,
    ZapaError,
)
from zapa_bridge.outbound.messages import build_message

BASE = "http://zapw.test:3000"
SEND_URL = f"{BASE}/sessions/s1/messages"
PHONE = "5511988887777"
TIMEOUT = 7.0
CONNECT_TIMEOUT = 1.5

EXPRESS_404 = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n'
    "</head>\n<body>\n<pre>Cannot POST /sessions/s1/message</pre>\n</body>\n</html>\n"
)
SESSION_CONNECTED = {
    "id": "s1", "status": "connected", "createdAt": "2025-01-01T10:00:00.000Z",
    "phoneNumber": "1234567890", "name": "Test User",
    "connectedAt": "2025-01-01T10:00:02.000Z",
}
SESSION_INITIALIZING = {"id": "s2", "status": "initializing",
                        "createdAt": "2025-01-01T11:00:00.000Z"}


@pytest.fixture
def bridge() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def client() -> Iterator[BridgeClient]:
    bridge_client = BridgeClient(BASE + "/", timeout=TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
    yield bridge_client
    bridge_client.close()


def success(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def failure(text: str) -> dict[str, Any]:
    return {"status": "error", "error": text}


def a_text() -> Any:
    return build_message(to=PHONE, text="hello", session="s1")


def send_error(bridge, client, *, session="s1", **answer: Any) -> BridgeError:
    """Send a text through `session` while zapw gives `answer`; return the error raised."""
    bridge.add(responses.POST, f"{BASE}/sessions/{session}/messages", **answer)
    with pytest.raises(BridgeError) as caught:
        client.send(session, a_text())
    return caught.value


def sent_body(bridge, client, **fields: Any) -> dict[str, Any]:
    """The JSON body the client posts for a message built from `fields`."""
    bridge.add(responses.POST, SEND_URL, json=success({"messageId": "m", "timestamp": 1}))
    client.send("s1", build_message(to=PHONE, session="s1", **fields))
    return json.loads(bridge.calls[-1].request.body)


# -- send: the answer table -------------------------------------------------------------


def test_send_accepted_returns_the_receipt(bridge, client):
    bridge.add(responses.POST, SEND_URL, status=200, json=success(
        {"messageId": "3EB0AAAA1111", "timestamp": 1700000000000, "status": "sent"}))

    receipt = client.send("s1", a_text())

    assert receipt == SendReceipt(message_id="3EB0AAAA1111", timestamp=1700000000000,
                                  status="sent")


def test_send_accepted_with_empty_message_id_gives_empty_id(bridge, client):
    bridge.add(responses.POST, SEND_URL, json=success(
        {"messageId": "", "timestamp": 1700000000000, "status": "sent"}))

    receipt = client.send("s1", a_text())

    assert receipt.message_id == ""
    assert receipt.timestamp == 1700000000000


def test_send_to_offline_session_raises_retryable_session_not_connected(bridge, client):
    error = send_error(bridge, client, status=400, json=failure("Session not connected"))

    assert type(error) is SessionNotConnected
    assert error.retryable is True
    assert error.maybe_sent is False
    assert error.status_code == 400
    assert error.session_id == "s1"


@pytest.mark.parametrize("text", [
    'Recipient "to" is required',
    "Text is required for text messages",
    "Media URL or base64 is required",
    "File name is required for documents",
])
def test_send_rejected_as_invalid_raises_permanent_invalid_request(bridge, client, text):
    error = send_error(bridge, client, status=400, json=failure(text))

    assert type(error) is BridgeInvalidRequest
    assert error.retryable is False
    assert text == error.message
    assert error.status_code == 400


def test_send_to_unknown_session_raises_permanent_session_not_found(bridge, client):
    error = send_error(bridge, client, status=404, json=failure("Session s1 not found"))

    assert type(error) is SessionNotFound
    assert error.retryable is False
    assert error.session_id == "s1"
    assert error.status_code == 404


@pytest.mark.parametrize("reason", ["API key is required", "Invalid API key"])
def test_send_without_valid_api_key_raises_retryable_unauthorized(bridge, client, reason):
    error = send_error(bridge, client, status=401,
                       json={"error": "Unauthorized", "message": reason})

    assert type(error) is BridgeUnauthorized
    assert error.retryable is True
    assert error.status_code == 401
    assert reason in error.message


def test_send_socket_failure_raises_retryable_server_error(bridge, client):
    error = send_error(bridge, client, status=500, json=failure("Failed to send message"))

    assert type(error) is BridgeServerError
    assert error.retryable is True
    assert error.maybe_sent is False
    assert error.message == "Failed to send message"
    assert error.status_code == 500


@pytest.mark.parametrize("text", [
    "An unexpected error occurred",  # production: body too large or malformed JSON
    "request entity too large",  # NODE_ENV=development, body over the limit
    "Unexpected token } in JSON at position 12",  # NODE_ENV=development, malformed JSON
])
def test_send_answered_with_express_body_parser_500_raises_permanent_rejected_body(
        bridge, client, text):
    """Express's own 500 (`statusCode`, no `status`): a repeat of that body cannot pass."""
    body = {"error": "Internal Server Error", "message": text, "statusCode": 500}

    error = send_error(bridge, client, status=500, json=body)

    assert type(error) is BridgeRejectedBody
    assert (error.retryable, error.maybe_sent, error.status_code) == (False, False, 500)
    assert error.message == ("zapw's body parser refused the request (too large or not "
                             f"JSON): Internal Server Error: {text}")


@pytest.mark.parametrize("body", [
    {"status": "error", "error": "Failed to send message"},
    {"error": "Internal Server Error", "message": "Failed to create session",
     "statusCode": 500},
], ids=["zapw-envelope", "a-routes-own-500"])
def test_a_500_that_is_not_the_body_parsers_stays_a_retryable_server_error(bridge, client,
                                                                          body):
    error = send_error(bridge, client, status=500, json=body)

    assert type(error) is BridgeServerError
    assert error.retryable is True


def test_send_answered_with_a_500_that_is_not_json_raises_server_error(bridge, client):
    error = send_error(bridge, client, status=502, body="Bad Gateway",
                       content_type="text/plain")

    assert type(error) is BridgeServerError
    assert error.status_code == 502


def test_send_with_connection_refused_raises_unreachable_not_sent(bridge, client):
    refused = requests.ConnectionError(
        "HTTPConnectionPool(host='zapw.test', port=3000): Max retries exceeded "
        "([Errno 111] Connection refused)")

    error = send_error(bridge, client, body=refused)

    assert type(error) is BridgeUnreachable
    assert error.retryable is True
    assert error.maybe_sent is False
    assert error.session_id == "s1"
    assert "Connection refused" in error.message


def test_send_with_connection_dropped_after_sending_may_have_sent(bridge, client):
    dropped = requests.ConnectionError(
        "('Connection aborted.', RemoteDisconnected('Remote end closed connection "
        "without response'))")

    error = send_error(bridge, client, body=dropped)

    assert type(error) is BridgeUnreachable
    assert error.retryable is True
    assert error.maybe_sent is True


def test_send_with_read_timeout_raises_timeout_that_may_have_sent(bridge, client):
    error = send_error(bridge, client, body=requests.ReadTimeout("read timed out"))

    assert type(error) is BridgeTimeout
    assert error.retryable is True
    assert error.maybe_sent is True
    assert error.session_id == "s1"


def test_send_with_connect_timeout_raises_unreachable_not_sent(bridge, client):
    error = send_error(bridge, client, body=requests.ConnectTimeout("connect timed out"))

    assert type(error) is BridgeUnreachable
    assert error.retryable is True
    assert error.maybe_sent is False


def test_other_requests_failures_become_unreachable(bridge, client):
    error = send_error(bridge, client, body=requests.TooManyRedirects("loop"))

    assert type(error) is BridgeUnreachable


def test_send_answered_with_express_html_404_raises_unexpected_response(bridge, client):
    error = send_error(bridge, client, status=404, body=EXPRESS_404, content_type="text/html")

    assert type(error) is UnexpectedBridgeResponse
    assert error.status_code == 404


def test_send_answered_200_without_success_envelope_raises_unexpected_response(bridge, client):
    error = send_error(bridge, client, status=200, json={"messageId": "m1", "timestamp": 1})

    assert type(error) is UnexpectedBridgeResponse
    assert error.status_code == 200


def test_send_answered_200_with_html_raises_unexpected_response(bridge, client):
    error = send_error(bridge, client, status=200, body="<html></html>",
                       content_type="text/html")

    assert type(error) is UnexpectedBridgeResponse


def test_send_answered_200_with_non_object_data_raises_unexpected_response(bridge, client):
    error = send_error(bridge, client, status=200, json=success(["m1"]))

    assert type(error) is UnexpectedBridgeResponse


def test_bridge_errors_share_the_zapa_root_and_never_leak_requests_exceptions(bridge, client):
    error = send_error(bridge, client, body=requests.ConnectionError("Connection refused"))

    assert isinstance(error, ZapaError)
    assert not isinstance(error, requests.RequestException)
    assert error.__cause__ is None


# -- send: the exact body ---------------------------------------------------------------


def test_text_body_has_only_to_type_and_text(bridge, client):
    body = sent_body(bridge, client, text="hello")

    assert body == {"to": PHONE, "type": "text", "text": "hello"}


def test_image_by_url_body_uses_media_url_and_caption(bridge, client):
    body = sent_body(bridge, client, type="image", media_url="https://cdn.example/a.png",
                     caption="a cat")

    assert body == {"to": PHONE, "type": "image", "mediaUrl": "https://cdn.example/a.png",
                    "caption": "a cat"}


def test_video_by_base64_body_uses_media_base64(bridge, client):
    body = sent_body(bridge, client, type="video", media_base64="AAAAIGZ0eXBpc29t")

    assert body == {"to": PHONE, "type": "video", "mediaBase64": "AAAAIGZ0eXBpc29t"}


def test_audio_body_uses_media_url(bridge, client):
    body = sent_body(bridge, client, type="audio", media_url="https://cdn.example/a.ogg")

    assert body == {"to": PHONE, "type": "audio", "mediaUrl": "https://cdn.example/a.ogg"}


def test_document_body_uses_file_name(bridge, client):
    body = sent_body(bridge, client, type="document", media_url="https://cdn.example/r.pdf",
                     file_name="report.pdf", caption="Q3")

    assert body == {"to": PHONE, "type": "document", "mediaUrl": "https://cdn.example/r.pdf",
                    "fileName": "report.pdf", "caption": "Q3"}


def test_location_body_keeps_latitude_zero(bridge, client):
    body = sent_body(bridge, client, type="location", latitude=0, longitude=-46.6,
                     name="Equator", address="Somewhere")

    assert body == {"to": PHONE, "type": "location", "latitude": 0, "longitude": -46.6,
                    "name": "Equator", "address": "Somewhere"}


def test_contact_body_uses_contact_name_and_number(bridge, client):
    body = sent_body(bridge, client, type="contact", contact_name="Ana",
                     contact_number="5511977776666")

    assert body == {"to": PHONE, "type": "contact", "contactName": "Ana",
                    "contactNumber": "5511977776666"}


def test_send_body_has_no_snake_case_no_null_and_no_routing_fields(bridge, client):
    body = sent_body(bridge, client, type="document", media_base64="AAAA",
                     file_name="a.bin", priority="high")

    assert [key for key in body if "_" in key] == []
    assert [key for key, value in body.items() if value is None] == []
    assert {"session", "priority", "from_number", "fromNumber"} & set(body) == set()


def test_the_posted_bytes_are_the_measured_payload_as_requests_json_encoded_them(bridge,
                                                                               client):
    """What build_message measured against ZAPW_MAX_BODY_BYTES is what zapw receives."""
    message = build_message(to=PHONE, session="s1", type="image", media_base64="AAAA",
                            caption="olá 😀")
    bridge.add(responses.POST, SEND_URL, json=success({"messageId": "m", "timestamp": 1}))

    client.send("s1", message)

    request = bridge.calls[-1].request
    assert request.body == message.bridge_payload()
    assert request.body == json.dumps(message.bridge_body()).encode()
    assert int(request.headers["Content-Length"]) == len(message.bridge_payload())


def test_send_body_is_sent_as_json(bridge, client):
    sent_body(bridge, client, text="hello")

    assert bridge.calls[-1].request.headers["Content-Type"] == "application/json"


# -- auth, paths, timeouts --------------------------------------------------------------


def test_api_key_is_sent_as_bearer_token(bridge):
    keyed = BridgeClient(BASE, api_key="k-123")
    bridge.add(responses.GET, f"{BASE}/sessions", json=success([]))

    keyed.list_sessions()
    keyed.close()

    assert bridge.calls[0].request.headers["Authorization"] == "Bearer k-123"


def test_no_authorization_header_without_api_key(bridge, client):
    bridge.add(responses.GET, f"{BASE}/sessions", json=success([]))

    client.list_sessions()

    assert "Authorization" not in bridge.calls[0].request.headers


def test_client_from_settings_uses_url_key_timeouts_and_body_limit(bridge):
    settings = Settings(ZAPW_URL="http://zapw.test:3000/", ZAPW_API_KEY="from-env",
                        ZAPW_TIMEOUT=9, ZAPW_CONNECT_TIMEOUT=2, ZAPA_RETRY_BACKOFF_MAX=60,
                        ZAPA_VISIBILITY_TIMEOUT=300, ZAPW_MAX_BODY_BYTES=50_000)
    configured = BridgeClient.from_settings(settings)
    assert configured.max_body_bytes == 50_000
    bridge.add(responses.GET, f"{BASE}/sessions", json=success([]))

    configured.list_sessions()
    configured.close()

    request = bridge.calls[0].request
    assert request.headers["Authorization"] == "Bearer from-env"
    assert request.req_kwargs["timeout"] == (2.0, 9.0)


def test_session_id_is_url_quoted_in_the_path(bridge, client):
    bridge.add(responses.POST, f"{BASE}/sessions/team%20a%2Fb%3F/messages",
               json=success({"messageId": "m1", "timestamp": 1}))

    client.send("team a/b?", a_text())

    assert bridge.calls[0].request.path_url == "/sessions/team%20a%2Fb%3F/messages"


@pytest.mark.parametrize("session_id", [".", ".."])
def test_a_dot_session_id_is_refused_before_any_request(bridge, client, session_id):
    """`requests` would send `/sessions/../messages` as `/messages`: another route."""
    calls = [lambda: client.send(session_id, a_text()),
             lambda: client.get_session(session_id),
             lambda: client.delete_session(session_id),
             lambda: client.create_session(session_id)]
    for call in calls:
        with pytest.raises(BridgeInvalidRequest) as caught:
            call()
        assert (caught.value.session_id, caught.value.retryable) == (session_id, False)
        assert "cannot be a URL path segment" in caught.value.message

    assert len(bridge.calls) == 0


def test_every_session_route_percent_encodes_the_id(bridge, client):
    """An id that looks like an encoded dot segment stays itself: its `%` is encoded."""
    bridge.add(responses.GET, f"{BASE}/sessions/%252E%252E", json=success(SESSION_CONNECTED))
    bridge.add(responses.DELETE, f"{BASE}/sessions/a%2F..", status=204)

    client.get_session("%2E%2E")
    client.delete_session("a/..")

    assert [call.request.path_url for call in bridge.calls] == [
        "/sessions/%252E%252E", "/sessions/a%2F.."]


def test_send_passes_connect_and_read_timeouts(bridge, client):
    bridge.add(responses.POST, SEND_URL, json=success({"messageId": "m1", "timestamp": 1}))

    client.send("s1", a_text())

    assert bridge.calls[0].request.req_kwargs["timeout"] == (CONNECT_TIMEOUT, TIMEOUT)


def test_every_call_passes_a_timeout(bridge, client):
    bridge.add(responses.GET, f"{BASE}/health", json={"status": "ok"})
    bridge.add(responses.GET, f"{BASE}/sessions", json=success([]))
    bridge.add(responses.GET, f"{BASE}/sessions/s1", json=success(SESSION_CONNECTED))
    bridge.add(responses.POST, f"{BASE}/sessions", status=201, json=success(SESSION_CONNECTED))
    bridge.add(responses.DELETE, f"{BASE}/sessions/s1", status=204)

    client.health()
    client.list_sessions()
    client.get_session("s1")
    client.create_session("s1")
    client.delete_session("s1")

    timeouts = [call.request.req_kwargs["timeout"] for call in bridge.calls]
    assert timeouts == [
        (CONNECT_TIMEOUT, TIMEOUT),  # health
        (CONNECT_TIMEOUT, TIMEOUT),  # list
        (CONNECT_TIMEOUT, GET_SESSION_TIMEOUT),
        (CONNECT_TIMEOUT, CREATE_SESSION_TIMEOUT),
        (CONNECT_TIMEOUT, TIMEOUT),  # delete
    ]


def test_create_session_allows_35_seconds_for_the_qr(bridge, client):
    bridge.add(responses.POST, f"{BASE}/sessions", status=201, json=success(SESSION_CONNECTED))

    client.create_session("s1")

    assert bridge.calls[0].request.req_kwargs["timeout"][1] == 35.0


# -- health and sessions ----------------------------------------------------------------


def test_health_parses_the_bare_object(bridge, client):
    bridge.add(responses.GET, f"{BASE}/health", json={
        "status": "ok", "timestamp": "2025-01-01T10:00:00.000Z", "service": "zapw",
        "uptime": 12.5})

    assert client.health() == BridgeHealth(status="ok", service="zapw", uptime=12.5,
                                           timestamp="2025-01-01T10:00:00.000Z")


def test_health_of_a_process_that_is_down_raises_unreachable(bridge, client):
    bridge.add(responses.GET, f"{BASE}/health", body=requests.ConnectionError("refused"))

    with pytest.raises(BridgeUnreachable):
        client.health()


def test_list_sessions_parses_each_session_with_absent_fields_as_none(bridge, client):
    bridge.add(responses.GET, f"{BASE}/sessions",
               json=success([SESSION_CONNECTED, SESSION_INITIALIZING]))

    sessions = client.list_sessions()

    assert sessions == [
        SessionInfo(id="s1", status="connected", created_at="2025-01-01T10:00:00.000Z",
                    phone_number="1234567890", name="Test User",
                    connected_at="2025-01-01T10:00:02.000Z"),
        SessionInfo(id="s2", status="initializing", created_at="2025-01-01T11:00:00.000Z"),
    ]
    assert [session.connected for session in sessions] == [True, False]
    assert sessions[1].phone_number is None
    assert sessions[1].qr_code is None


def test_list_sessions_that_is_not_a_list_raises_unexpected_response(bridge, client):
    bridge.add(responses.GET, f"{BASE}/sessions", json=success({"id": "s1"}))

    with pytest.raises(UnexpectedBridgeResponse):
        client.list_sessions()


def test_get_session_parses_the_session(bridge, client):
    bridge.add(responses.GET, f"{BASE}/sessions/s1", json=success(SESSION_CONNECTED))

    session = client.get_session("s1")

    assert session.phone_number == "1234567890"
    assert session.connected is True


def test_get_unknown_session_raises_session_not_found(bridge, client):
    bridge.add(responses.GET, f"{BASE}/sessions/nope", status=404,
               json=failure("Session nope not found"))

    with pytest.raises(SessionNotFound) as caught:
        client.get_session("nope")

    assert caught.value.session_id == "nope"
    assert caught.value.status_code == 404


def test_create_session_sends_the_id_and_parses_the_qr(bridge, client):
    qr = "data:image/png;base64," + "A" * 20000
    bridge.add(responses.POST, f"{BASE}/sessions", status=201, json=success({
        "id": "s1", "status": "qr_waiting", "createdAt": "2025-01-01T10:00:00.000Z",
        "qrCode": qr, "qrExpiresAt": "2025-01-01T10:01:00.000Z"}))

    session = client.create_session("s1")

    assert json.loads(bridge.calls[0].request.body) == {"sessionId": "s1"}
    assert session.status == "qr_waiting"
    assert qr == session.qr_code
    assert session.qr_expires_at == "2025-01-01T10:01:00.000Z"
    assert session.connected is False


def test_create_session_without_id_sends_an_empty_object(bridge, client):
    bridge.add(responses.POST, f"{BASE}/sessions", status=201, json=success({
        "id": "0b6f7c1e-5d7a-4f51-9a53-3c1f5e0d2a11", "status": "qr_waiting",
        "createdAt": "2025-01-01T10:00:00.000Z"}))

    session = client.create_session()

    assert json.loads(bridge.calls[0].request.body) == {}
    assert session.id == "0b6f7c1e-5d7a-4f51-9a53-3c1f5e0d2a11"


def test_create_existing_session_raises_session_already_exists(bridge, client):
    bridge.add(responses.POST, f"{BASE}/sessions", status=409,
               json=failure("Session s1 already exists"))

    with pytest.raises(SessionAlreadyExists) as caught:
        client.create_session("s1")

    assert caught.value.retryable is False
    assert caught.value.status_code == 409


def test_create_session_qr_timeout_raises_server_error(bridge, client):
    bridge.add(responses.POST, f"{BASE}/sessions", status=500,
               json=failure("Timeout waiting for QR code"))

    with pytest.raises(BridgeServerError):
        client.create_session("s1")


def test_delete_session_answered_204_returns_none(bridge, client):
    bridge.add(responses.DELETE, f"{BASE}/sessions/s1", status=204)

    assert client.delete_session("s1") is None
    assert bridge.calls[0].request.method == "DELETE"


def test_delete_unknown_session_raises_session_not_found(bridge, client):
    bridge.add(responses.DELETE, f"{BASE}/sessions/s9", status=404,
               json=failure("Session s9 not found"))

    with pytest.raises(SessionNotFound):
        client.delete_session("s9")


# -- GET /events ----------------------------------------------------------------------------

STORED = {"id": "evt_7", "sessionId": "s1", "eventType": "message.received",
          "timestamp": 1795599514489,
          "data": {"from": f"{PHONE}@s.whatsapp.net", "messageId": "3EB0AAAA1111",
                   "type": "text", "text": "Hello there!"}}


def test_recent_events_lists_zapws_stored_events_as_webhook_envelopes(bridge):
    bridge.add(responses.GET, f"{BASE}/events", json=success([STORED, {**STORED, "id": "evt_6",
                                                                       "sessionId": 42}]))
    keyed = BridgeClient(BASE, api_key="k1")
    events = keyed.recent_events()
    assert bridge.calls[0].request.headers["Authorization"] == "Bearer k1"
    assert [(e.id, e.session_id) for e in events] == [("evt_7", "s1"), ("evt_6", 42)]
    assert events[0] == StoredEvent("evt_7", "s1", "message.received", 1795599514489,
                                    STORED["data"])
    assert events[0].envelope() == {"sessionId": "s1", "eventType": "message.received",
                                    "timestamp": 1795599514489, "data": STORED["data"]}


def test_recent_events_skips_entries_that_are_not_objects(bridge, client):
    bridge.add(responses.GET, f"{BASE}/events", json=success([STORED, "evt_5", None]))
    assert [e.id for e in client.recent_events()] == ["evt_7"]


def test_recent_events_answered_without_a_list_raises_unexpected_response(bridge, client):
    bridge.add(responses.GET, f"{BASE}/events", json=success({"events": []}))
    with pytest.raises(UnexpectedBridgeResponse, match="event list is not a list"):
        client.recent_events()


def test_recent_events_refused_for_the_api_key_raises_unauthorized(bridge, client):
    bridge.add(responses.GET, f"{BASE}/events", status=401,
               json={"error": "Unauthorized", "message": "API key is required"})
    with pytest.raises(BridgeUnauthorized):
        client.recent_events()


def test_recent_events_of_a_zapw_without_the_route_raises_unexpected_response(bridge, client):
    bridge.add(responses.GET, f"{BASE}/events", status=404, body=EXPRESS_404,
               content_type="text/html; charset=utf-8")
    with pytest.raises(UnexpectedBridgeResponse):
        client.recent_events()
