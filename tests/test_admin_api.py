"""The admin JSON API under `/api/v1/integration/`: the bearer token on every route, the one
error shape, and each route against the zapw simulator over HTTP, the suite's Redis and,
where a message must really be sent or fail, a real worker."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import recipient, wait_until
from workers.tasks import send_message, services
from zapa_bridge.config import get_settings, load_settings
from zapa_bridge.errors import ConfigError
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.simulator import Simulator, SimulatorConfig
from zapa_bridge.web import create_app
from zapa_bridge.web.admin_api import SEND_REQUEST_ALLOWANCE
from zapa_bridge.web.throttle import FAILURES_ALLOWED

API = "/api/v1/integration"
TOKEN = os.environ["ZAPA_ADMIN_TOKEN"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TO = "5511988887777"

ROUTES = [
    ("GET", "/health", None),
    ("POST", "/reinitialize", None),
    ("GET", "/queue/stats", None),
    ("GET", "/sessions", None),
    ("POST", "/sessions", {"session_id": "s-auth"}),
    ("DELETE", "/sessions/s-auth", None),
    ("GET", "/messages/unknown-id", None),
    ("POST", "/messages", {"to": TO, "text": "hi", "session": "s1"}),
    ("GET", "/dead-letters", None),
    ("POST", "/dead-letters/unknown-id/replay", None),
    ("DELETE", "/dead-letters", None),
    ("GET", "/inbound-dead-letters", None),
    ("POST", "/inbound-dead-letters/unknown-id/replay", None),
    ("DELETE", "/inbound-dead-letters", None),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """zapw whose new sessions wait for their QR to be scanned."""
    with Simulator(SimulatorConfig(connect_delay=None)) as simulator:
        yield simulator


@pytest.fixture
def app(redis_db: Any, sim: Simulator) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "SETTINGS": load_settings(ZAPW_URL=sim.url)})
    yield app
    app.extensions["zapa"].bridge.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def call(client: FlaskClient, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> Any:
    return client.open(API + path, method=method, json=body,
                       headers=AUTH if headers is None else headers)


def assert_error(answer: Any, status: int, code: str) -> dict[str, Any]:
    """The one error shape: `{"error": {"code", "message"[, "field"]}}`."""
    assert answer.status_code == status
    body = answer.get_json()
    assert list(body) == ["error"]
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "field"}
    return error


def wait_status(message_id: str, status: MessageStatus) -> None:
    wait_until(lambda: (r := services().store.get(message_id)) is not None
               and r.status == status, what=f"{message_id} {status}")


# -- the token -----------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_every_route_refuses_a_request_without_a_token(client, method, path, body):
    assert_error(call(client, method, path, body, headers={}), 401, "unauthorized")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_every_route_refuses_a_wrong_token(client, method, path, body):
    for wrong in ("Bearer not-the-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN):
        answer = call(client, method, path, body, headers={"Authorization": wrong})
        assert_error(answer, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_every_route_accepts_the_admin_token(client, method, path, body):
    assert call(client, method, path, body).status_code != 401


def test_wrong_tokens_from_one_address_are_throttled_even_for_the_right_token(client, caplog):
    """About 800 guesses a second were possible; now FAILURES_ALLOWED a minute, then 429."""
    wrong = {"Authorization": "Bearer not-the-token"}
    answers = [call(client, "GET", "/health", headers=wrong)
               for _ in range(FAILURES_ALLOWED)]

    assert [a.status_code for a in answers[:-1]] == [401] * (FAILURES_ALLOWED - 1)
    assert answers[-1].status_code in {401, 429}  # the last one allowed
    blocked = call(client, "GET", "/queue/stats")  # the right token, from the same address
    assert_error(blocked, 429, "too_many_requests")
    assert 0 < int(blocked.headers["Retry-After"]) <= 60
    assert "event=auth.throttled scope=admin remote=127.0.0.1" in caplog.text
    assert "event=admin_api.refused remote=127.0.0.1" in caplog.text
    other = client.get(API + "/queue/stats", headers=AUTH,
                       environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200


def test_requests_without_any_credentials_are_not_counted_as_guesses(client):
    for _ in range(FAILURES_ALLOWED + 2):
        assert_error(call(client, "GET", "/health", headers={}), 401, "unauthorized")

    assert call(client, "GET", "/queue/stats").status_code == 200


def test_production_refuses_to_start_without_an_admin_token(redis_db, sim):
    settings = load_settings(ZAPW_URL=sim.url, ZAPA_ENV="production", ZAPA_ADMIN_TOKEN="")
    with pytest.raises(ConfigError) as raised:
        create_app({"TESTING": True, "SETTINGS": settings})
    assert list(raised.value.problems) == ["ZAPA_ADMIN_TOKEN"]
    assert "ZAPA_ADMIN_TOKEN" in str(raised.value)


# -- health --------------------------------------------------------------------------------

def test_health_returns_the_overall_status_and_every_component(client, sim):
    sim.add_session("s1")
    answer = call(client, "GET", "/health")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["overall_status"] in ("healthy", "degraded", "unhealthy")
    assert isinstance(body["age"], int | float)
    assert sorted(body["components"]) == ["beat", "bridge", "dead_letters", "held_messages",
                                          "inbound_dead_letters", "pacing", "queues", "redis",
                                          "webhooks", "workers"]
    for component in body["components"].values():
        assert sorted(component) == ["last_check", "message", "metadata", "status"]
        assert component["status"] in ("healthy", "degraded", "unhealthy")
    assert body["components"]["bridge"]["status"] == "healthy"
    # No worker runs and beat never ran: the worst of them is the overall status.
    assert body["components"]["workers"]["status"] == "unhealthy"
    assert body["overall_status"] == "unhealthy"


def test_reinitialize_reconciles_and_takes_a_fresh_snapshot(client, sim):
    sim.add_session("s1")
    stale = call(client, "GET", "/health").get_json()
    sim.disconnect("s1")
    answer = call(client, "POST", "/reinitialize")
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["reconcile"]["bridge_reachable"], body["reconcile"]["sessions"]) == (True, 1)
    assert body["health"]["taken_at"] > stale["taken_at"]
    assert body["health"]["components"]["bridge"]["status"] == "degraded"
    assert call(client, "GET", "/health").get_json()["taken_at"] == body["health"]["taken_at"]


# -- sessions ------------------------------------------------------------------------------

def test_create_session_answers_201_with_a_png_qr_code(client, sim):
    answer = call(client, "POST", "/sessions", {"session_id": "s1"})
    assert answer.status_code == 201
    body = answer.get_json()
    assert (body["id"], body["status"]) == ("s1", "qr_waiting")
    assert body["qr_code"].startswith("data:image/png;base64,")
    assert sim.session("s1")["status"] == "qr_waiting"


def test_create_session_that_exists_answers_409(client, sim):
    sim.add_session("s1")
    error = assert_error(call(client, "POST", "/sessions", {"session_id": "s1"}), 409,
                         "session_exists")
    assert error["message"] == "Session s1 already exists"


@pytest.mark.parametrize("session_id", ["a/b", ".", "..", 7, "x" * 101])
def test_create_session_with_a_bad_id_answers_422_naming_the_field(client, sim, session_id):
    error = assert_error(call(client, "POST", "/sessions", {"session_id": session_id}), 422,
                         "invalid_request")
    assert error["field"] == "session_id"
    assert sim.session(str(session_id)) is None


@pytest.mark.parametrize("session_id", [".", ".."])
def test_delete_of_a_dot_session_answers_422_and_calls_no_other_route(client, sim, session_id):
    """`DELETE /sessions/..` would reach zapw as `DELETE /`."""
    sim.add_session("s1")
    error = assert_error(call(client, "DELETE", f"/sessions/{session_id}"), 422,
                         "invalid_request")
    assert error["field"] == "session_id"
    assert sim.session("s1") is not None


def test_create_session_with_a_deeply_nested_body_answers_400(client):
    answer = client.post(API + "/sessions", data="[" * 100_000, headers=AUTH,
                         content_type="application/json")
    assert_error(answer, 400, "too_deep")


def test_list_sessions_comes_from_the_bridge_with_held_counts(client, sim):
    sim.add_session("s1")
    sim.add_session("s2", connected=False)
    body = call(client, "GET", "/sessions").get_json()
    assert (body["source"], body["error"]) == ("bridge", None)
    assert [(s["id"], s["status"], s["held"]) for s in body["sessions"]] == [
        ("s1", "connected", 0), ("s2", "qr_waiting", 0)]


def test_delete_session_answers_204_then_404(client, sim):
    sim.add_session("s1")
    answer = call(client, "DELETE", "/sessions/s1")
    assert (answer.status_code, answer.get_data()) == (204, b"")
    assert sim.session("s1") is None
    assert_error(call(client, "DELETE", "/sessions/s1"), 404, "not_found")


# -- messages ------------------------------------------------------------------------------

def test_send_answers_202_with_the_id_and_its_location_and_records_it_queued(client):
    answer = call(client, "POST", "/messages", {"to": TO, "text": "hi", "session": "s1"})
    assert answer.status_code == 202
    body = answer.get_json()
    assert body == {"id": body["id"], "status": "queued"}
    assert answer.headers["Location"] == f"{API}/messages/{body['id']}"
    record = services().store.get(body["id"])
    assert (record.status, record.session, record.to) == (MessageStatus.QUEUED, "s1", TO)


@pytest.mark.parametrize(("fields", "field"), [
    ({"to": "abc", "text": "hi", "session": "s1"}, "to"),
    ({"to": TO, "session": "s1"}, "text"),
    ({"to": TO, "text": "hi", "session": "s1", "priority": "urgent"}, "priority"),
], ids=["bad-number", "no-text", "bad-priority"])
def test_send_with_bad_input_answers_422_naming_the_field_and_queues_nothing(
        client, redis_db, fields, field):
    error = assert_error(call(client, "POST", "/messages", fields), 422, "invalid_message")
    assert error["field"] == field
    assert redis_db.llen("zapa.send.default") == 0


def test_send_of_base64_media_over_zapws_body_limit_answers_422_naming_media_base64(
        client, redis_db):
    image = "A" * 103_000  # valid base64: a body over zapw's 100 KB, within the route's
    answer = call(client, "POST", "/messages",
                  {"to": TO, "type": "image", "media_base64": image, "session": "s1"})
    error = assert_error(answer, 422, "invalid_message")
    assert error["field"] == "media_base64"
    assert "over ZAPW_MAX_BODY_BYTES (102400)" in error["message"]
    assert "media_url" in error["message"]
    assert list(redis_db.scan_iter("zapa*")) == []


def test_send_of_a_request_zapw_could_never_take_answers_413_pointing_to_media_url(
        client, redis_db):
    """The route reads at most ZAPW_MAX_BODY_BYTES plus SEND_REQUEST_ALLOWANCE, not the
    webhooks' 256 KB: a larger request is refused before it is read."""
    image = "A" * (102_400 + SEND_REQUEST_ALLOWANCE)
    answer = call(client, "POST", "/messages",
                  {"to": TO, "type": "image", "media_base64": image, "session": "s1"})
    error = assert_error(answer, 413, "request_entity_too_large")
    assert f"at most {102_400 + SEND_REQUEST_ALLOWANCE} (ZAPW_MAX_BODY_BYTES" in error["message"]
    assert error["message"].endswith("send large media by media_url")
    assert list(redis_db.scan_iter("zapa*")) == []


def test_send_takes_as_much_as_zapw_does_even_over_the_webhooks_limit(
        redis_db, sim, monkeypatch):
    """With a zapw that parses 400 KB, a 300 KB base64 image is queued: the app's 256 KB
    (ZAPA_WEBHOOK_MAX_BYTES) is not the send route's limit."""
    monkeypatch.setenv("ZAPW_MAX_BODY_BYTES", "409600")
    get_settings.cache_clear()  # the send task reads the process's settings
    try:
        settings = load_settings(ZAPW_URL=sim.url)
        app = create_app({"TESTING": True, "SETTINGS": settings})
        image = "A" * 300_000
        answer = app.test_client().post(API + "/messages", headers=AUTH, json={
            "to": TO, "type": "image", "media_base64": image, "session": "s1"})
        app.extensions["zapa"].bridge.close()
    finally:
        monkeypatch.delenv("ZAPW_MAX_BODY_BYTES")
        get_settings.cache_clear()
    assert settings.webhook_max_bytes < 300_000
    assert answer.status_code == 202


@pytest.mark.parametrize("name", ["default_session", "max_body_bytes"])
def test_send_with_a_field_named_like_a_setting_answers_422_naming_it(client, redis_db, name):
    """These clashed with build_message's own keywords: a TypeError, a 500."""
    answer = call(client, "POST", "/messages", {"to": TO, "text": "hi", name: "s-other"})
    error = assert_error(answer, 422, "invalid_message")
    assert error["field"] == name
    assert list(redis_db.scan_iter("zapa*")) == []


HUGE = "9" * 4000  # a JSON integer Python reads and no float holds


@pytest.mark.parametrize(("raw", "field"), [
    (f'{{"to": "{TO}", "text": "hi", "session": "s1", "expires_at": {HUGE}}}', "expires_at"),
    (f'{{"to": "{TO}", "text": "hi", "session": "s1", "ttl": {HUGE}}}', "ttl"),
    (f'{{"to": "{TO}", "type": "location", "latitude": {HUGE}, "longitude": 1, '
     f'"session": "s1"}}', "latitude"),
    (f'{{"to": "{TO}", "type": "location", "latitude": 1, "longitude": -{HUGE}, '
     f'"session": "s1"}}', "longitude"),
    (f'{{"to": "{TO}", "text": "hi", "session": "s1", "expires_at": 1e400}}', "expires_at"),
    (f'{{"to": "{TO}", "type": "image", "media_url": "http://[", "session": "s1"}}',
     "media_url"),
    (f'{{"to": "{TO}", "text": "hi", "session": ".."}}', "session"),
    (f'{{"to": "{TO}", "text": "hi", "session": "."}}', "session"),
], ids=["expires_at-4000-digits", "ttl-4000-digits", "latitude-4000-digits",
        "longitude-4000-digits", "expires_at-1e400", "media_url-unclosed-ipv6",
        "session-dotdot", "session-dot"])
def test_send_of_an_out_of_range_or_unusable_value_answers_422_naming_it(
        client, redis_db, raw, field):
    answer = client.post(API + "/messages", data=raw, headers=AUTH,
                         content_type="application/json")
    error = assert_error(answer, 422, "invalid_message")
    assert error["field"] == field
    assert list(redis_db.scan_iter("zapa*")) == []


@pytest.mark.parametrize("raw", ["[" * 100_000, '{"to": ' + "[" * 50_000,
                                 '{"text": ' + '{"a": ' * 10_000 + "1" + "}" * 10_001])
def test_send_of_a_deeply_nested_body_answers_400_not_500(client, raw):
    answer = client.post(API + "/messages", data=raw, headers=AUTH,
                         content_type="application/json")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] in {"too_deep", "invalid_json"}


def test_send_of_a_deep_but_readable_body_answers_422_naming_the_field(client, redis_db):
    body = {"to": TO, "session": "s1", "text": json.loads("[" * 200 + "]" * 200)}
    error = assert_error(call(client, "POST", "/messages", body), 422, "invalid_message")
    assert error["field"] == "text"


def test_send_with_a_body_that_is_not_an_object_answers_400(client):
    assert_error(call(client, "POST", "/messages", ["not", "an", "object"]), 400,
                 "invalid_json")


def test_get_message_returns_its_record_and_history(client):
    location = call(client, "POST", "/messages",
                    {"to": TO, "text": "hi", "session": "s1"}).headers["Location"]
    answer = client.get(location, headers=AUTH)
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["status"], body["session"], body["to"]) == ("queued", "s1", TO)
    assert [entry["status"] for entry in body["history"]] == ["queued"]
    assert "text" not in body


def test_get_unknown_message_answers_404(client):
    error = assert_error(call(client, "GET", "/messages/no-such-id"), 404, "not_found")
    assert error["message"] == "no message no-such-id"


# -- queues and dead letters ---------------------------------------------------------------

def test_queue_stats_count_the_queued_messages_per_queue(client):
    for n, priority in enumerate(("default", "default", "high")):
        call(client, "POST", "/messages",
             {"to": recipient(n), "text": "hi", "session": "s1", "priority": priority})
    body = call(client, "GET", "/queue/stats").get_json()
    assert body["queues"]["zapa.send.default"]["depth"] == 2
    assert body["queues"]["zapa.send.high"]["depth"] == 1
    assert body["queues"]["zapa.send.low"] == {"depth": 0, "oldest_age": None}
    assert body["queues"]["zapa.send.default"]["oldest_age"] >= 0
    assert body["totals"] == {"waiting": 3, "held": 0, "dead_letters": 0}


@pytest.mark.slow
def test_dead_letter_replayed_through_the_api_is_sent_once_its_session_exists(
        client, sim, start_worker):
    start_worker(ZAPW_URL=sim.url)
    message_id = call(client, "POST", "/messages",
                      {"to": TO, "text": "again", "session": "s5"}).get_json()["id"]
    wait_status(message_id, MessageStatus.FAILED)
    listed = call(client, "GET", "/dead-letters").get_json()
    assert listed["count"] == 1
    [letter] = listed["dead_letters"]
    assert (letter["id"], letter["reason"]) == (message_id,
                                                "SessionNotFound: Session s5 not found")
    assert letter["message"]["text"] == "again"

    sim.add_session("s5")
    answer = call(client, "POST", f"/dead-letters/{message_id}/replay")
    assert answer.status_code == 200
    assert (answer.get_json()["id"], answer.get_json()["status"]) == (message_id, "queued")
    wait_status(message_id, MessageStatus.SENT)
    assert [send.body["text"] for send in sim.sends("s5")] == ["again"]
    assert call(client, "GET", "/dead-letters").get_json()["count"] == 0


def test_replaying_a_message_that_is_not_a_dead_letter_answers_404(client):
    message_id = call(client, "POST", "/messages",
                      {"to": TO, "text": "hi", "session": "s1"}).get_json()["id"]
    assert_error(call(client, "POST", f"/dead-letters/{message_id}/replay"), 404, "not_found")


@pytest.mark.slow
def test_purging_dead_letters_removes_them_all(client, start_worker, sim):
    start_worker(ZAPW_URL=sim.url)
    ids = [send_message.delay(to=TO, text="x", session="ghost").id for _ in range(2)]
    for message_id in ids:
        wait_status(message_id, MessageStatus.FAILED)
    assert call(client, "GET", "/dead-letters").get_json()["count"] == 2

    answer = call(client, "DELETE", "/dead-letters")
    assert (answer.status_code, answer.get_json()) == (200, {"purged": 2})
    assert call(client, "GET", "/dead-letters").get_json() == {"count": 0, "dead_letters": []}
    assert [services().store.get(i) for i in ids] == [None, None]


@pytest.mark.slow
def test_negative_limit_never_hides_dead_letters(client, start_worker, sim):
    start_worker(ZAPW_URL=sim.url)
    ids = [send_message.delay(to=TO, text="x", session="ghost").id for _ in range(3)]
    for message_id in ids:
        wait_status(message_id, MessageStatus.FAILED)
    answer = call(client, "GET", "/dead-letters?limit=-1")
    if answer.status_code == 200:
        listed = {letter["id"] for letter in answer.get_json()["dead_letters"]}
        assert listed == set(ids)
    else:
        assert_error(answer, 422, "invalid_request")


def test_send_with_a_field_named_self_answers_422_naming_it(client, redis_db):
    answer = call(client, "POST", "/messages", {"to": TO, "text": "hi", "self": "x"})
    error = assert_error(answer, 422, "invalid_message")
    assert error["field"] == "self"
