"""`POST /api/v1/webhooks/whatsapp`: authentication, envelope checks, dedupe and the spool,
through Flask's test client (and real HTTP where threads matter) with the suite's Redis."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import requests
from flask import Flask
from standardwebhooks.webhooks import Webhook
from werkzeug.serving import make_server

from tests.helpers import task_kwargs
from workers.tasks import services
from zapa_bridge.config import load_settings
from zapa_bridge.devtools.embedded_redis import free_port
from zapa_bridge.errors import ConfigError
from zapa_bridge.inbound.events import parse_event
from zapa_bridge.inbound.intake import QUEUED_MARK, Intake
from zapa_bridge.inbound.spool import Spool
from zapa_bridge.store import keys
from zapa_bridge.web import create_app

PATH = "/api/v1/webhooks/whatsapp"
TOKEN = os.environ["ZAPA_WEBHOOK_TOKEN"]
SECRET = "whsec_" + base64.b64encode(b"a shared key of thirty-two bytes").decode()
EVENTS_QUEUE = "zapa.events"
INBOUND_QUEUE = load_settings().inbound_queue

# The contract's examples, as zapw posts them.
RECEIVED = {
    "sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
    "timestamp": 1795599514484,
    "data": {"from": "5511988887777@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
             "messageId": "3EB0AAAA1111", "timestamp": 1700000000000, "isGroup": False,
             "type": "text", "text": "Hello there!"},
}
RECEIVED_ID = "s1:3EB0AAAA1111"
CONNECTED = {
    "sessionId": "s1", "origin": "1234567890", "eventType": "session.connected",
    "timestamp": 1795599312427, "data": {"phoneNumber": "1234567890", "name": "Test User"},
}


def status_event(event_type: str, **data: Any) -> dict[str, Any]:
    return {"sessionId": "s1", "origin": "1234567890", "eventType": event_type,
            "timestamp": 1795599600000, "data": {"messageId": "3EB0BBBB2222", **data}}


def encode(event: dict[str, Any] | bytes) -> bytes:
    return event if isinstance(event, bytes) else json.dumps(event).encode()


def post(client: Any, event: dict[str, Any] | bytes, *, token: str | None = TOKEN,
         headers: dict[str, str] | None = None) -> Any:
    """Post one event as zapw does: JSON body, the event type header, the token in the URL."""
    body = encode(event)
    event_type = event.get("eventType", "") if isinstance(event, dict) else ""
    return client.post(PATH, data=body, query_string={"token": token} if token else None,
                       headers={"Content-Type": "application/json",
                                "X-Webhook-Event": str(event_type), **(headers or {})})


def signed_headers(body: bytes, *, secret: str = SECRET, at: datetime | None = None,
                   msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W") -> dict[str, str]:
    at = at or datetime.now(tz=UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature}


def queued_events(redis_db: Any) -> list[dict[str, Any]]:
    """The envelopes waiting on the events queue, oldest first (kombu's Redis encoding)."""
    events = []
    for raw in reversed(redis_db.lrange(EVENTS_QUEUE, 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == "zapa.handle_event"
        events.append(task_kwargs(message)["event"])
    return events


def handed_on(redis_db: Any) -> list[str]:
    """The ids of the inbound messages handed to ZAPA_INBOUND_TASK, oldest first."""
    tasks = [json.loads(raw) for raw in reversed(redis_db.lrange(INBOUND_QUEUE, 0, -1))]
    assert {task["headers"]["task"] for task in tasks} <= {os.environ["ZAPA_INBOUND_TASK"]}
    return [task_kwargs(task)["message"]["id"] for task in tasks]


def taken_in(redis_db: Any) -> list[Any]:
    """Every event taken in: the tasks queued for `handle_event`, then the messages
    handed on."""
    return [*queued_events(redis_db), *handed_on(redis_db)]


def seen_key(event: dict[str, Any]) -> str:
    return keys.seen(parse_event(event).dedupe_key())


def intake_of(app: Flask) -> Intake:
    return app.extensions["zapa_web"].intake


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app over real HTTP, one thread per request as a threaded web server runs it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{PATH}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def app(redis_db) -> Flask:
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def post_event(client):
    return partial(post, client)


@pytest.fixture
def signed_client(redis_db):
    return create_app({"TESTING": True,
                       "SETTINGS": load_settings(ZAPA_WEBHOOK_SECRET=SECRET)}).test_client()


def down_settings(tmp_path, **overrides: Any):
    """Settings whose Redis is a closed port and whose spool is a file under `tmp_path`."""
    return load_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                         ZAPA_SPOOL_PATH=str(tmp_path / "spool.db"), **overrides)


# --- authentication -------------------------------------------------------------------------

def test_good_token_in_the_url_is_accepted(post_event):
    answer = post_event(RECEIVED)
    assert (answer.status_code, answer.json) == (200, {"status": "accepted"})
    # The bytes jsonify wrote before the route answered with prepared ones.
    assert (answer.content_type, answer.data) == ("application/json",
                                                  b'{"status":"accepted"}\n')


def test_bad_token_is_refused_with_the_json_error_shape(post_event, redis_db):
    answer = post_event(RECEIVED, token="not-the-token")
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "unauthorized"
    assert answer.json["error"]["message"] == "invalid token"
    assert taken_in(redis_db) == []


def test_request_without_credentials_is_refused(post_event, redis_db):
    answer = post_event(RECEIVED, token=None)
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "unauthorized"
    assert "missing credentials" in answer.json["error"]["message"]
    assert taken_in(redis_db) == []


def test_valid_standard_webhooks_signature_is_accepted(signed_client, redis_db):
    body = encode(RECEIVED)
    answer = post(signed_client, body, token=None, headers=signed_headers(body))
    assert (answer.status_code, answer.json) == (200, {"status": "accepted"})
    assert taken_in(redis_db) == [RECEIVED_ID]


def test_correctly_signed_but_ten_minutes_old_request_is_refused(signed_client, redis_db):
    body = encode(RECEIVED)
    stale = datetime.now(tz=UTC) - timedelta(minutes=10)
    answer = post(signed_client, body, token=None, headers=signed_headers(body, at=stale))
    assert answer.status_code == 401
    assert answer.json["error"] == {"code": "unauthorized",
                                    "message": "invalid signature: Message timestamp too old"}
    assert taken_in(redis_db) == []


def test_body_that_differs_from_the_signed_one_is_refused(signed_client, redis_db):
    signed = encode({**RECEIVED, "data": {**RECEIVED["data"], "text": "what was signed"}})
    answer = post(signed_client, encode(RECEIVED), token=None, headers=signed_headers(signed))
    assert answer.status_code == 401
    assert answer.json["error"]["message"] == "invalid signature: No matching signature found"
    assert taken_in(redis_db) == []


def test_signature_by_another_secret_is_refused(signed_client):
    body = encode(RECEIVED)
    other = "whsec_" + base64.b64encode(b"somebody else's key").decode()
    answer = post(signed_client, body, token=None, headers=signed_headers(body, secret=other))
    assert answer.status_code == 401


@pytest.mark.parametrize("bad_headers", [
    {"webhook-signature": "garbage"},
    {"webhook-signature": "v1,not*base64"},
    {"webhook-signature": "v1,a,b"},
    {"webhook-signature": "v1,é"},
    {"webhook-timestamp": "soon"},
    {"webhook-id": ""},
], ids=["no-version", "not-base64", "extra-comma", "non-ascii", "bad-timestamp", "no-id"])
def test_malformed_signature_headers_are_401_not_500(signed_client, bad_headers):
    body = encode(RECEIVED)
    answer = post(signed_client, body, token=None,
                  headers={**signed_headers(body), **bad_headers})
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "unauthorized"


def test_production_without_token_or_secret_refuses_to_start():
    settings = load_settings(ZAPA_ENV="production", ZAPA_WEBHOOK_TOKEN="",
                             ZAPA_WEBHOOK_SECRET="")
    with pytest.raises(ConfigError) as raised:
        create_app({"TESTING": True, "SETTINGS": settings})
    assert list(raised.value.problems) == ["ZAPA_WEBHOOK_TOKEN"]
    assert "ZAPA_WEBHOOK_SECRET" in str(raised.value)


def test_development_without_token_or_secret_accepts_unauthenticated_posts(redis_db):
    settings = load_settings(ZAPA_ENV="development", ZAPA_WEBHOOK_TOKEN="")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    answer = post(client, RECEIVED, token=None)
    assert (answer.status_code, answer.json) == (200, {"status": "accepted"})


# --- envelope checks ------------------------------------------------------------------------

def test_body_over_the_size_limit_is_413_with_the_json_error_shape(redis_db):
    client = create_app({"TESTING": True,
                         "SETTINGS": load_settings(ZAPA_WEBHOOK_MAX_BYTES=2048)}).test_client()
    big = {**RECEIVED, "data": {**RECEIVED["data"], "text": "x" * 3000}}
    answer = post(client, big)
    assert answer.status_code == 413
    assert answer.json["error"]["code"] == "request_entity_too_large"
    assert taken_in(redis_db) == []


def test_body_just_under_the_size_limit_is_accepted(redis_db):
    client = create_app({"TESTING": True,
                         "SETTINGS": load_settings(ZAPA_WEBHOOK_MAX_BYTES=2048)}).test_client()
    body = encode({**RECEIVED, "data": {**RECEIVED["data"], "text": ""}})
    filled = encode({**RECEIVED, "data": {**RECEIVED["data"], "text": "x" * (2048 - len(body))}})
    assert len(filled) == 2048
    assert post(client, filled).status_code == 200


@pytest.mark.parametrize("body", [b"not json", b"{\"sessionId\": ", b"\xff\xfe\x00"],
                         ids=["text", "truncated", "not-utf8"])
def test_body_that_is_not_json_is_400_invalid_json(post_event, body):
    answer = post_event(body)
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("field", ["sessionId", "eventType", "data"])
def test_envelope_missing_a_field_is_422_naming_it(post_event, redis_db, field):
    event = {key: value for key, value in RECEIVED.items() if key != field}
    answer = post_event(event)
    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "invalid_envelope"
    assert answer.json["error"]["field"] == field
    assert taken_in(redis_db) == []


@pytest.mark.parametrize("data", ["text", ["a"], None, 3])
def test_data_that_is_not_an_object_is_422(post_event, data):
    answer = post_event({**RECEIVED, "data": data})
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "data"


@pytest.mark.parametrize("body", [[RECEIVED], "s1", 7], ids=["list", "string", "number"])
def test_body_that_is_not_an_object_is_422(post_event, body):
    answer = post_event(json.dumps(body).encode())
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "body"


@pytest.mark.parametrize("session", ["", True, None, {"id": "s1"}],
                         ids=["empty", "bool", "null", "object"])
def test_session_id_that_is_no_id_is_422(post_event, session):
    answer = post_event({**RECEIVED, "sessionId": session})
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "sessionId"


def test_numeric_session_id_is_accepted_and_queued_as_posted(post_event, redis_db):
    event = {**RECEIVED, "sessionId": 42}
    answer = post_event(event)
    assert (answer.status_code, answer.json) == (200, {"status": "accepted"})
    assert taken_in(redis_db) == ["42:3EB0AAAA1111"]


def test_timestamp_out_of_range_is_422_not_500(post_event, redis_db):
    answer = post_event(encode(RECEIVED).replace(b"1795599514484", b"1e400"))
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "timestamp"


def test_unknown_event_type_is_ignored_counted_and_not_queued(app, post_event, redis_db):
    event = {"sessionId": "s1", "origin": "1234567890", "eventType": "chats.update",
             "timestamp": 1795599514484, "data": {"id": "x"}}
    answer = post_event(event)
    assert (answer.status_code, answer.json) == (200, {"status": "ignored"})
    assert intake_of(app).stats() == {"other:ignored": 1}
    assert redis_db.hgetall(keys.WEBHOOK_STATS) == {"other:ignored": "1"}
    assert redis_db.llen(EVENTS_QUEUE) == 0


# --- deduplication --------------------------------------------------------------------------

def test_same_message_posted_twice_is_queued_once(app, post_event, redis_db):
    first, second = post_event(RECEIVED), post_event(RECEIVED)
    assert (first.json, second.json) == ({"status": "accepted"}, {"status": "duplicate"})
    assert (first.status_code, second.status_code) == (200, 200)
    assert taken_in(redis_db) == [RECEIVED_ID]
    assert intake_of(app).stats() == {"message.received:accepted": 1,
                                      "message.received:duplicate": 1}
    assert 0 < redis_db.ttl(seen_key(RECEIVED)) <= load_settings().dedupe_ttl


def test_same_event_posted_by_eight_threads_at_once_is_accepted_once(app, redis_db):
    body = encode(RECEIVED)
    start = threading.Barrier(8)

    def deliver(url: str) -> str:
        start.wait(timeout=10)
        answer = requests.post(url, params={"token": TOKEN}, data=body, timeout=10,
                               headers={"Content-Type": "application/json"})
        assert answer.status_code == 200
        return answer.json()["status"]

    with served(app) as url, ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(deliver, [url] * 8))
    assert sorted(outcomes) == ["accepted"] + ["duplicate"] * 7
    assert taken_in(redis_db) == [RECEIVED_ID]


def test_status_events_with_different_status_values_are_not_duplicates(post_event, redis_db):
    events = [status_event("message.sent"), status_event("message.sent", status=3),
              status_event("message.sent", status=4)]
    assert [post_event(event).json["status"] for event in events] == ["accepted"] * 3
    assert post_event(events[1]).json == {"status": "duplicate"}
    # Applied at the intake, no task: with no record knowing zapw's id yet, the two that
    # move a record are kept for the worker's `sent` change.
    assert taken_in(redis_db) == []
    assert sorted(redis_db.hgetall(keys.kept_receipts("s1", "3EB0BBBB2222"))) == [
        "delivered", "read"]
    assert services().intake.stats() == {"message.sent:accepted": 3,
                                         "message.sent:duplicate": 1}


def test_same_message_id_on_two_sessions_is_not_a_duplicate(post_event, redis_db):
    other = {**RECEIVED, "sessionId": "s2"}
    assert [post_event(RECEIVED).json, post_event(other).json] == [{"status": "accepted"}] * 2
    assert taken_in(redis_db) == [RECEIVED_ID, "s2:3EB0AAAA1111"]


def test_session_events_with_different_timestamps_are_both_accepted(post_event, redis_db):
    later = {**CONNECTED, "timestamp": CONNECTED["timestamp"] + 60_000}
    assert [post_event(CONNECTED).json, post_event(later).json] == [{"status": "accepted"}] * 2
    assert post_event(later).json == {"status": "duplicate"}
    assert queued_events(redis_db) == [CONNECTED, later]


# --- the spool ------------------------------------------------------------------------------

def test_event_is_spooled_when_redis_is_down_and_queued_once_drained(tmp_path, redis_db):
    app = create_app({"TESTING": True, "SETTINGS": down_settings(tmp_path)})
    answer = post(app.test_client(), RECEIVED)
    assert (answer.status_code, answer.json) == (200, {"status": "spooled"})
    assert intake_of(app).spool.count() == 1
    assert redis_db.llen(EVENTS_QUEUE) == 0

    intake = services().intake_over(redis_db, Spool(tmp_path / "spool.db"), dedupe_ttl=60)
    assert intake.drain_spool() == 1
    assert intake.spool.count() == 0
    assert taken_in(redis_db) == [RECEIVED_ID]


def test_event_spooled_twice_is_queued_once_when_drained(tmp_path, redis_db):
    client = create_app({"TESTING": True, "SETTINGS": down_settings(tmp_path)}).test_client()
    assert [post(client, RECEIVED).json for _ in range(2)] == [{"status": "spooled"}] * 2

    intake = services().intake_over(redis_db, Spool(tmp_path / "spool.db"), dedupe_ttl=60)
    assert intake.spool.count() == 2
    assert intake.drain_spool() == 2
    assert intake.spool.count() == 0
    assert taken_in(redis_db) == [RECEIVED_ID]


def test_spooled_event_already_queued_before_the_outage_is_not_queued_again(
        tmp_path, post_event, redis_db):
    assert post_event(RECEIVED).json == {"status": "accepted"}
    client = create_app({"TESTING": True, "SETTINGS": down_settings(tmp_path)}).test_client()
    assert post(client, RECEIVED).json == {"status": "spooled"}

    intake = services().intake_over(redis_db, Spool(tmp_path / "spool.db"), dedupe_ttl=60)
    assert intake.drain_spool() == 1
    assert taken_in(redis_db) == [RECEIVED_ID]


def test_drain_while_redis_is_still_down_keeps_the_events(tmp_path, redis_db):
    app = create_app({"TESTING": True, "SETTINGS": down_settings(tmp_path)})
    assert post(app.test_client(), RECEIVED).json == {"status": "spooled"}
    assert intake_of(app).drain_spool() == 0
    assert intake_of(app).spool.count() == 1


def test_spooled_event_whose_own_dedupe_write_landed_is_queued_at_drain(tmp_path, redis_db):
    """An older intake's SET NX reached Redis but its answer did not: the key holds that
    intake's token, which the spooled event carries, so the drain knows the sighting was its
    own."""
    redis_db.set(seen_key(RECEIVED), "token-1", ex=30)
    spool = Spool(tmp_path / "spool.db")
    spool.put(RECEIVED, deduplicated=False, token="token-1")
    spool.put(RECEIVED, deduplicated=False, token="token-2")  # zapw's redelivery, also spooled
    assert services().intake_over(redis_db, spool, dedupe_ttl=60).drain_spool() == 2
    assert taken_in(redis_db) == [RECEIVED_ID]
    assert 0 < redis_db.ttl(seen_key(RECEIVED)) <= 30  # the key keeps its time to live


def test_spooled_event_its_own_script_call_already_queued_is_drained_not_queued_again(
        tmp_path, redis_db):
    """The script ran but its answer never came back (the client's retry too): the intake
    spooled the event with its token, and the drain finds that token's queued mark."""
    intake = services().intake_over(redis_db, Spool(tmp_path / "spool.db"), dedupe_ttl=60)
    assert intake.accept(parse_event(RECEIVED)) == "accepted"
    token = redis_db.get(seen_key(RECEIVED)).removesuffix(QUEUED_MARK)
    intake.spool.put(RECEIVED, deduplicated=False, token=token)
    assert intake.drain_spool() == 1
    assert taken_in(redis_db) == [RECEIVED_ID]
    assert intake.stats() == {"message.received:accepted": 1}


def test_a_row_an_older_version_spooled_after_deduplicating_is_queued(tmp_path, redis_db):
    """Older versions spooled an event whose SET NX they had won but whose publish failed as
    `deduplicated`, without a token; its seen key (their token) does not stop it."""
    redis_db.set(seen_key(RECEIVED), "an-older-intakes-token", ex=60)
    spool = Spool(tmp_path / "spool.db")
    spool.put(RECEIVED, deduplicated=True)
    assert services().intake_over(redis_db, spool, dedupe_ttl=60).drain_spool() == 1
    # Queued as it is, for the worker to take in.
    assert taken_in(redis_db) == [RECEIVED]


def test_event_whose_key_an_older_intake_set_is_a_duplicate_and_not_queued(app, post_event,
                                                                           redis_db):
    """During a rolling deploy the key may hold an older intake's bare token."""
    redis_db.set(seen_key(RECEIVED), "an-older-intakes-token", ex=60)
    assert post_event(RECEIVED).json == {"status": "duplicate"}
    assert taken_in(redis_db) == []
    assert intake_of(app).stats() == {"message.received:duplicate": 1}


def test_a_spool_written_before_events_carried_tokens_is_upgraded_and_drained(
        tmp_path, redis_db):
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, spooled_at REAL "
                   "NOT NULL, deduplicated INTEGER NOT NULL, claimed_until REAL NOT NULL "
                   "DEFAULT 0, event TEXT NOT NULL)")
        db.execute("INSERT INTO events (spooled_at, deduplicated, event) VALUES (0, 0, ?)",
                   (json.dumps(RECEIVED),))
        db.commit()
    assert services().intake_over(redis_db, Spool(path), dedupe_ttl=60).drain_spool() == 1
    assert taken_in(redis_db) == [RECEIVED_ID]


def test_unwritable_spool_path_stops_the_app_at_start_up(tmp_path):
    (tmp_path / "afile").write_text("")
    settings = load_settings(ZAPA_SPOOL_PATH=str(tmp_path / "afile" / "spool.db"))
    with pytest.raises(ConfigError, match="ZAPA_SPOOL_PATH"):
        create_app({"TESTING": True, "SETTINGS": settings})


def test_event_stored_neither_in_redis_nor_the_spool_is_503_unavailable(tmp_path, redis_db):
    spool_dir = tmp_path / "spool"
    settings = load_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                             ZAPA_SPOOL_PATH=str(spool_dir / "spool.db"))
    app = create_app({"TESTING": True, "SETTINGS": settings})
    # The spool's directory disappears after start-up (a lost volume); each server thread
    # opens its own connection to the spool, so the next write fails.
    shutil.rmtree(spool_dir)
    spool_dir.write_text("")
    with served(app) as url:
        answer = requests.post(url, params={"token": TOKEN}, data=encode(RECEIVED), timeout=10,
                               headers={"Content-Type": "application/json"})
    assert answer.status_code == 503
    assert answer.json()["error"] == {"code": "unavailable",
                                      "message": "the event could not be stored; retry"}


def test_event_answered_503_is_accepted_when_zapw_retries_it(tmp_path, redis_db):
    spool_dir = tmp_path / "spool"
    app = create_app({"TESTING": True,
                      "SETTINGS": load_settings(ZAPA_SPOOL_PATH=str(spool_dir / "spool.db"))})
    shutil.rmtree(spool_dir)
    spool_dir.write_text("")
    with served(app) as url:
        deliver = partial(requests.post, url, params={"token": TOKEN}, data=encode(RECEIVED),
                          timeout=10, headers={"Content-Type": "application/json"})
        # Redis refuses the push inside the intake's script, the spool is gone: the script
        # must leave no dedupe key behind, or the retry would be a "duplicate".
        redis_db.execute_command("ACL", "SETUSER", "default", "-lpush")
        try:
            refused = deliver()
        finally:
            redis_db.execute_command("ACL", "SETUSER", "default", "+lpush")
        assert refused.status_code == 503
        retried = deliver()
    assert (retried.status_code, retried.json()) == (200, {"status": "accepted"})
    assert taken_in(redis_db) == [RECEIVED_ID]


# --- logs -----------------------------------------------------------------------------------

def test_the_token_never_appears_in_logs(post_event, caplog):
    caplog.set_level(logging.DEBUG)
    assert post_event(RECEIVED).status_code == 200
    assert post_event(RECEIVED, token="not-the-token").status_code == 401
    assert post_event(RECEIVED, token=TOKEN + "x").status_code == 401
    assert any("event=webhook.refused" in record.getMessage() for record in caplog.records)
    leaks = [record.getMessage() for record in caplog.records
             if TOKEN in record.getMessage() or "not-the-token" in record.getMessage()]
    assert leaks == []
