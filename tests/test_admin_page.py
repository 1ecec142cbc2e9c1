"""The admin page at `/admin/`: token sign-in, what the dashboard shows, replay through a
form with its CSRF token (Flask's test client, the suite's Redis, the zapw stub over HTTP);
then the whole page in a real headless Chromium against gunicorn and a real worker."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.conftest import ROOT
from tests.helpers import wait_until
from tests.zapw_stub import ZapwStub
from workers.tasks import send_message, services
from zapa_bridge.config import load_settings
from zapa_bridge.devtools.embedded_redis import free_port
from zapa_bridge.inbound.events import parse_event
from zapa_bridge.inbound.messages import InboundTask, normalize
from zapa_bridge.outbound.status_store import MessageRecord, MessageStatus
from zapa_bridge.simulator.jsvalues import iso_timestamp
from zapa_bridge.simulator.png import qr_data_url
from zapa_bridge.store import keys
from zapa_bridge.store.publisher import PreparedMessage
from zapa_bridge.web import create_app, throttle
from zapa_bridge.web.admin_page import SESSION_COOKIE
from zapa_bridge.wording import counted

TOKEN = os.environ["ZAPA_ADMIN_TOKEN"]
TO = "5511988887777"
MASKED_TO = "551********77"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
RECEIVED = {
    "sessionId": "main", "origin": "5511900001111", "eventType": "message.received",
    "timestamp": 1795599514484,
    "data": {"from": "5511977776666@s.whatsapp.net", "to": "5511900001111:1@s.whatsapp.net",
             "messageId": "3EB0AAAA1111", "timestamp": 1795599514000, "isGroup": False,
             "type": "text", "text": "my private question"},
}


@pytest.fixture
def app(redis_db: Any, zapw: ZapwStub) -> Flask:
    return create_app({"TESTING": True, "SETTINGS": load_settings(ZAPW_URL=zapw.url)})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def sign_in(client: FlaskClient, token: str = TOKEN) -> Any:
    return client.post("/admin/login", data={"token": token})


def dashboard(client: FlaskClient) -> str:
    answer = client.get("/admin/")
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def csrf_token(page: str) -> str:
    found = CSRF_FIELD.search(page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def dead_letter(app: Flask, text: str = "hello") -> str:
    """A message queued for real, then failed as the deliverer fails an unknown session."""
    core = app.extensions["zapa"]
    message_id = send_message.delay(to=TO, text=text, session="ghost").id
    core.store.transition(message_id, MessageStatus.FAILED,
                          fields={"reason": "session not found: Session ghost not found"})
    return message_id


def add_qr_waiting_session(zapw: ZapwStub, session_id: str, qr_code: str,
                           expires_in: float = 60.0) -> None:
    """zapw's object for a session created and not yet scanned (the stub cannot create one),
    its QR expiring `expires_in` seconds from now (a negative number: already expired)."""
    now = time.time()
    with zapw.lock:
        zapw.sessions[session_id] = {"id": session_id, "status": "qr_waiting",
                                     "createdAt": iso_timestamp(now - 10),
                                     "qrCode": qr_code,
                                     "qrExpiresAt": iso_timestamp(now + expires_in)}


def section(page: str, section_id: str) -> str:
    return page.split(f'id="{section_id}"', 1)[1].split("</section>", 1)[0]


def record_of(message_id: str) -> MessageRecord | None:
    return services().store.get(message_id)


# -- sign-in -------------------------------------------------------------------------------

def test_dashboard_redirects_to_the_sign_in_form_when_signed_out(client):
    answer = client.get("/admin/")
    assert (answer.status_code, answer.location) == (302, "/admin/login")
    form = client.get("/admin/login").get_data(as_text=True)
    assert 'name="token"' in form and 'type="password"' in form


def test_wrong_token_is_refused_with_401_and_the_form_says_so(client):
    answer = sign_in(client, "not-the-token")
    assert answer.status_code == 401
    assert "That is not the admin token." in answer.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_right_token_signs_in_and_shows_every_section_of_the_dashboard(client):
    answer = sign_in(client)
    assert (answer.status_code, answer.location) == (302, "/admin/")
    page = dashboard(client)
    for section in ("health", "sessions", "queues", "held", "dead-letters", "inbound"):
        assert f'id="{section}"' in page
    assert '<meta http-equiv="refresh" content="10">' in page
    assert "zapa.send.default" in page


def test_the_health_card_says_so_while_zapw_is_not_posting_webhooks(client, redis_db):
    sign_in(client)
    assert 'id="webhooks-not-posting"' not in dashboard(client)
    redis_db.hset(keys.EVENTS_DELIVERY, mapping={"arrived_at": "100.0", "missed_at": "200.0"})
    card = section(dashboard(client), "health")
    assert 'id="webhooks-not-posting"' in card
    assert "zapw is not posting webhooks here: check ENABLE_WEBHOOK and WEBHOOK_URL" in card
    redis_db.hset(keys.EVENTS_DELIVERY, "arrived_at", "300.0")
    assert 'id="webhooks-not-posting"' not in dashboard(client)


def test_sign_out_ends_the_session(client):
    sign_in(client)
    answer = client.post("/admin/logout", data={"csrf_token": csrf_token(dashboard(client))})
    assert (answer.status_code, answer.location) == (302, "/admin/login")
    assert "Signed out." in client.get("/admin/login").get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_sign_out_without_the_csrf_token_is_400_and_keeps_the_session(client):
    sign_in(client)
    assert client.post("/admin/logout").status_code == 400
    assert client.get("/admin/").status_code == 200


def test_a_session_started_in_one_process_is_valid_in_another(app, zapw):
    first = app.test_client()
    sign_in(first)
    cookie = first.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    second = create_app({"TESTING": True,
                         "SETTINGS": load_settings(ZAPW_URL=zapw.url)}).test_client()
    second.set_cookie(SESSION_COOKIE, cookie.value)
    assert second.get("/admin/").status_code == 200


def test_a_new_admin_token_signs_everyone_out(client, zapw):
    sign_in(client)
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    settings = load_settings(ZAPW_URL=zapw.url, ZAPA_ADMIN_TOKEN="a-new-admin-token-" + "n" * 20)
    other = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    other.set_cookie(SESSION_COOKIE, cookie.value)
    assert other.get("/admin/").status_code == 302


def test_the_cookie_of_a_signed_out_session_no_longer_works(app, client):
    sign_in(client)
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    client.post("/admin/logout", data={"csrf_token": csrf_token(dashboard(client))})
    replayed = app.test_client()
    replayed.set_cookie(SESSION_COOKIE, cookie.value)
    assert replayed.get("/admin/").status_code == 302


def test_signing_in_again_replaces_the_session_id(client):
    sign_in(client)
    first = client.get_cookie(SESSION_COOKIE)
    sign_in(client)
    second = client.get_cookie(SESSION_COOKIE)
    assert first is not None and second is not None and first.value != second.value


def test_a_cookie_signed_with_the_old_scheme_s_key_is_refused(app):
    """Sessions used to be Flask cookies signed with a key derived from the admin token:
    anyone with the token could mint one. Now the cookie is only an id Redis must know."""
    key = hashlib.sha256(b"zapa-admin-session:" + TOKEN.encode()).digest()
    forger_app = Flask("forger")
    forger_app.secret_key = key
    signer = SecureCookieSessionInterface().get_signing_serializer(forger_app)
    assert signer is not None
    forged = signer.dumps({"admin": True, "csrf": "x"})
    for name in (SESSION_COOKIE, "session"):
        forger = app.test_client()
        forger.set_cookie(name, forged)
        assert forger.get("/admin/").status_code == 302


def test_a_session_lasts_the_configured_hours_in_the_cookie_and_in_redis(redis_db, zapw):
    settings = load_settings(ZAPW_URL=zapw.url, ZAPA_ADMIN_SESSION_HOURS="2")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    answer = sign_in(client)
    cookie_header = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie_header and "SameSite=Lax" in cookie_header
    assert "Secure" not in cookie_header  # http public URL
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None and cookie.expires is not None
    lifetime = cookie.expires.timestamp() - time.time()
    assert 2 * 3600 - 60 < lifetime <= 2 * 3600
    [key] = redis_db.keys("zapa:admin-session:*")
    assert 2 * 3600 - 60 < redis_db.ttl(key) <= 2 * 3600
    assert cookie.value not in key  # the key is a digest of the id, not the id


def test_a_session_past_its_expiry_is_over(app, client, redis_db):
    sign_in(client)
    [key] = redis_db.keys("zapa:admin-session:*")
    record = json.loads(redis_db.get(key))
    record["expires_at"] = time.time() - 1
    redis_db.set(key, json.dumps(record))
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize(("public_url", "force", "secure"), [
    ("https://zapa.example.com", "", True),
    ("http://127.0.0.1:8000", "true", True),
    ("https://zapa.example.com", "false", False),
])
def test_the_cookie_is_secure_for_an_https_public_url_or_when_forced(
        redis_db, zapw, public_url, force, secure):
    settings = load_settings(ZAPW_URL=zapw.url, ZAPA_PUBLIC_URL=public_url,
                             ZAPA_COOKIE_SECURE=force)
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    answer = sign_in(client)
    assert ("Secure" in answer.headers["Set-Cookie"]) is secure


def test_failed_sign_ins_are_throttled_even_for_the_right_token(client, caplog):
    for _ in range(throttle.FAILURES_ALLOWED):
        assert sign_in(client, "guess").status_code == 401
    refused = sign_in(client, "guess")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= throttle.WINDOW_SECONDS
    assert "Too many wrong tokens" in refused.get_data(as_text=True)
    assert sign_in(client).status_code == 429  # the right token, while blocked
    assert client.get("/admin/").status_code == 302
    assert any("event=auth.throttled" in message and "scope=admin" in message
               for message in caplog.messages)


def test_a_sign_in_throttle_seen_by_one_process_blocks_in_another(app, zapw):
    first = app.test_client()
    for _ in range(throttle.FAILURES_ALLOWED):
        sign_in(first, "guess")
    other = create_app({"TESTING": True, "SETTINGS": load_settings(ZAPW_URL=zapw.url)})
    second = other.test_client()
    assert sign_in(second, "guess").status_code == 429  # its first failure learns the block
    assert sign_in(second).status_code == 429


# -- headers -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/admin/login", "/admin/"])
def test_the_page_sends_a_strict_csp_and_no_store(client, path):
    if path == "/admin/":
        sign_in(client)
    answer = client.get(path)
    assert answer.status_code == 200
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"


def test_the_stylesheet_may_be_cached_and_the_favicon_is_served(client):
    with client.get("/admin/static/admin.css") as sheet:
        assert sheet.status_code == 200
        assert "no-store" not in sheet.headers.get("Cache-Control", "")
    with client.get("/favicon.ico") as icon:
        assert icon.status_code == 200
        assert icon.mimetype == "image/vnd.microsoft.icon"
        assert icon.get_data()[:4] == b"\0\0\1\0"  # an ICO header


def test_page_is_open_in_development_without_an_admin_token(redis_db, zapw):
    settings = load_settings(ZAPW_URL=zapw.url, ZAPA_ENV="development", ZAPA_ADMIN_TOKEN="")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    page = dashboard(client)
    assert 'id="dead-letters"' in page
    assert "Sign out" not in page


# -- replay --------------------------------------------------------------------------------

def test_replay_through_the_page_queues_the_dead_letter_again(app, client):
    message_id = dead_letter(app)
    sign_in(client)
    page = dashboard(client)
    assert f'data-message="{message_id}"' in page
    answer = client.post(f"/admin/dead-letters/{message_id}/replay",
                         data={"csrf_token": csrf_token(page)})
    assert (answer.status_code, answer.location) == (302, "/admin/")
    record = record_of(message_id)
    assert record is not None
    assert (record.status, record.history[-1]["note"]) == (MessageStatus.QUEUED, "replayed")
    assert app.extensions["zapa"].dead_letters.count() == 0
    page = dashboard(client)
    assert f"Dead letter {message_id} replayed: it is queued again." in page
    assert "No dead letters." in page


def test_replay_that_failed_again_before_the_page_shows_says_so_with_the_reason(app, client):
    """A worker may take the replayed message and fail it again before the dashboard is
    read: the notice tells what the table shows, not "queued again"."""
    message_id = dead_letter(app)
    sign_in(client)
    client.post(f"/admin/dead-letters/{message_id}/replay",
                data={"csrf_token": csrf_token(dashboard(client))})
    app.extensions["zapa"].store.transition(  # as the deliverer fails it
        message_id, MessageStatus.FAILED, fields={"reason": "session not found: again"})
    page = dashboard(client)
    assert "queued again" not in page
    [notice] = re.findall(r'<p class="flash flash-error" role="status">([^<]*)</p>', page)
    assert notice == (f"Dead letter {message_id} replayed, but it failed again: "
                      "session not found: again.")
    assert f'data-message="{message_id}"' in section(page, "dead-letters")


def test_replay_notice_tells_a_message_sent_since(app, client):
    message_id = dead_letter(app)
    sign_in(client)
    client.post(f"/admin/dead-letters/{message_id}/replay",
                data={"csrf_token": csrf_token(dashboard(client))})
    store = app.extensions["zapa"].store
    store.transition(message_id, MessageStatus.SENDING)
    store.transition(message_id, MessageStatus.SENT, fields={"bridge_message_id": "B1"})
    assert f"Dead letter {message_id} replayed: it is sent." in dashboard(client)


def test_replay_without_the_csrf_token_is_400_and_replays_nothing(app, client):
    message_id = dead_letter(app)
    sign_in(client)
    answer = client.post(f"/admin/dead-letters/{message_id}/replay")
    assert answer.status_code == 400
    assert "CSRF token" in answer.get_data(as_text=True)
    record = record_of(message_id)
    assert record is not None and record.status == MessageStatus.FAILED


def test_replay_with_a_wrong_csrf_token_is_400(app, client):
    message_id = dead_letter(app)
    sign_in(client)
    answer = client.post(f"/admin/dead-letters/{message_id}/replay",
                         data={"csrf_token": "forged"})
    assert answer.status_code == 400


def test_replay_when_signed_out_goes_to_the_sign_in_form_and_replays_nothing(app, client):
    message_id = dead_letter(app)
    answer = client.post(f"/admin/dead-letters/{message_id}/replay",
                         data={"csrf_token": "anything"})
    assert (answer.status_code, answer.location) == (302, "/admin/login")
    record = record_of(message_id)
    assert record is not None and record.status == MessageStatus.FAILED


def test_replay_of_a_message_that_is_not_a_dead_letter_flashes_why(client):
    sign_in(client)
    token = csrf_token(dashboard(client))
    client.post("/admin/dead-letters/no-such-id/replay", data={"csrf_token": token})
    assert "Not replayed: message no-such-id is not a dead letter." in dashboard(client)


# -- what the dashboard shows --------------------------------------------------------------

def test_dead_letter_shows_reason_attempts_and_masked_recipient_never_the_text(app, client):
    dead_letter(app, text="the secret words")
    sign_in(client)
    page = dashboard(client)
    assert "session not found: Session ghost not found" in page
    assert MASKED_TO in page and TO not in page
    assert "the secret words" not in page


def test_session_waiting_for_its_qr_shows_the_qr_image(client, zapw):
    zapw.add_session("main", phone="5511900001111")
    add_qr_waiting_session(zapw, "pending", qr_data_url("pending"))
    sign_in(client)
    page = dashboard(client)
    images = re.findall(r'<img class="qr" data-session="([^"]+)" src="([^"]+)"', page)
    assert images == [("pending", qr_data_url("pending"))]


def test_a_qr_s_expiry_is_relative_not_zapw_s_iso_time(client, zapw):
    add_qr_waiting_session(zapw, "pending", qr_data_url("pending"), expires_in=45.5)
    with zapw.lock:
        expires = zapw.sessions["pending"]["qrExpiresAt"]
    sign_in(client)
    sessions = section(dashboard(client), "sessions")
    assert re.search(r">in \d\d s</span>", sessions)
    assert expires not in sessions
    assert "qr-expired" not in sessions and "expired" not in sessions


def test_a_qr_past_its_expiry_is_marked_expired_and_says_it_will_be_refreshed(client, zapw):
    add_qr_waiting_session(zapw, "pending", qr_data_url("pending"), expires_in=-185)
    with zapw.lock:
        expires = zapw.sessions["pending"]["qrExpiresAt"]
    sign_in(client)
    sessions = section(dashboard(client), "sessions")
    [card] = re.findall(r'<figure class="qr-card qr-expired" data-session="pending">.*?</figure>',
                        sessions, re.DOTALL)
    assert '<span class="badge expired">expired</span>' in card
    assert ">3 min ago</span>" in card and expires not in card
    assert "The bridge makes a\n        new one the next time it is asked" in card


def test_a_qr_code_that_is_not_a_png_data_url_is_not_put_in_an_image(client, zapw):
    add_qr_waiting_session(zapw, "pending", "https://evil.test/track.png")
    sign_in(client)
    page = dashboard(client)
    assert 'class="qr"' not in page and "evil.test" not in page


def test_what_the_bridge_says_is_escaped(client, zapw):
    zapw.add_session("main")
    with zapw.lock:
        zapw.sessions["main"]["name"] = "<script>alert(1)</script>"
    sign_in(client)
    page = dashboard(client)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_unreachable_bridge_shows_the_registry_sessions_greyed_with_a_notice(redis_db):
    app = create_app({"TESTING": True, "SETTINGS": load_settings(
        ZAPW_URL=f"http://127.0.0.1:{free_port()}", ZAPW_CONNECT_TIMEOUT=0.5)})
    app.extensions["zapa"].sessions.apply_event("remembered", "connected", at=1.0)
    client = app.test_client()
    sign_in(client)
    page = dashboard(client)
    assert "The bridge did not answer" in page
    assert "<td>remembered</td>" in page
    sessions = section(page, "sessions")
    assert re.findall(r'<span class="badge ([^"]+)"[^>]*>connected</span>', sessions) == ["stale"]
    assert "session-connected" not in sessions


def test_live_session_badges_are_not_greyed(client, zapw):
    zapw.add_session("main", phone="5511900001111")
    sign_in(client)
    sessions = section(dashboard(client), "sessions")
    assert '<span class="badge session-connected">connected</span>' in sessions
    assert "stale" not in sessions


def test_counts_of_one_read_as_english(app, client, redis_db):
    dead_letter(app)
    redis_db.set(keys.worker("celery@one"), json.dumps({"hostname": "celery@one", "pid": 1,
                                                       "started": time.time(),
                                                       "at": time.time()}))
    sign_in(client)
    page = dashboard(client)
    health = section(page, "health")
    assert "<td>1 worker alive</td>" in health
    assert "<td>1 dead letter to review</td>" in health
    assert "· 1 dead letter</p>" in section(page, "queues")
    assert "(s)" not in page and "1 dead letters" not in page


@pytest.mark.parametrize(("number", "noun", "shown"), [
    (1, "worker", "1 worker"), (3, "worker", "3 workers"), (0, "message", "0 messages"),
    (2, "zapw event", "2 zapw events"),
])
def test_counts_read_as_english(number, noun, shown):
    assert counted(number, noun) == shown


# -- the message page ----------------------------------------------------------------------

def test_message_ids_on_the_dashboard_link_to_their_page(app, client):
    message_id = dead_letter(app)
    sign_in(client)
    page = dashboard(client)
    link = f'<a href="/admin/messages/{message_id}">{message_id}</a>'
    assert link in section(page, "dead-letters") and link in section(page, "recent")


def test_message_page_shows_the_record_and_its_history_masked_never_the_text(app, client):
    message_id = send_message.delay(to=TO, text="the secret words", session="s1").id
    store = app.extensions["zapa"].store
    store.transition(message_id, MessageStatus.SENDING)
    store.transition(message_id, MessageStatus.FAILED, fields={"reason": "zapw said no"},
                     note="bridge refused")
    store.transition(message_id, MessageStatus.QUEUED, note="replayed")
    store.transition(message_id, MessageStatus.SENDING)
    store.transition(message_id, MessageStatus.SENT, fields={"bridge_message_id": "3EB0ZAPW42"})
    sign_in(client)
    answer = client.get(f"/admin/messages/{message_id}")
    assert answer.status_code == 200
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
    page = answer.get_data(as_text=True)
    record = section(page, "message")
    assert '<span class="badge msg-sent">sent</span>' in record
    for shown in ("<dt>to</dt><dd>551********77</dd>", "<dt>session</dt><dd>s1</dd>",
                  '<dd class="id">3EB0ZAPW42</dd>', '<dd class="reason">zapw said no</dd>'):
        assert shown in record
    history = section(page, "history")
    statuses = re.findall(r'class="badge msg-\w+">(\w+)</span>', history)
    assert statuses == ["sent", "sending", "queued", "failed", "sending", "queued"]
    assert "bridge refused" in history and "replayed" in history
    assert TO not in page and "the secret words" not in page
    assert 'class="replay"' not in page  # not a dead letter


def test_message_page_shows_each_part_of_a_long_text(app, client):
    message_id = send_message.delay(to=TO, text="word " * 2000, session="s1").id
    store = app.extensions["zapa"].store
    parts = [{"id": "3EB0PART1", "status": "delivered"}, {"status": "queued"},
             {"status": "queued"}]
    store.transition(message_id, MessageStatus.SENDING)
    store.transition(message_id, MessageStatus.QUEUED, note="part 1 of 3 accepted by bridge",
                     fields={"bridge_message_id": "3EB0PART1", "parts": json.dumps(parts)})
    sign_in(client)
    shown = section(client.get(f"/admin/messages/{message_id}").get_data(as_text=True),
                    "parts")
    assert re.findall(r'class="badge msg-\w+">(\w+)</span>', shown) == [
        "delivered", "queued", "queued"]
    assert "<td>1 of 3</td>" in shown and '<td class="id">3EB0PART1</td>' in shown
    assert "word" not in shown


def test_a_message_sent_whole_has_no_parts_section(app, client):
    message_id = send_message.delay(to=TO, text="short", session="s1").id
    sign_in(client)
    assert 'id="parts"' not in client.get(f"/admin/messages/{message_id}").get_data(
        as_text=True)


def test_message_page_of_a_dead_letter_offers_replay(app, client):
    message_id = dead_letter(app)
    sign_in(client)
    page = client.get(f"/admin/messages/{message_id}").get_data(as_text=True)
    assert f'action="/admin/dead-letters/{message_id}/replay"' in page
    assert "session not found: Session ghost not found" in page


def test_message_page_of_an_unknown_id_is_a_404_page(client):
    sign_in(client)
    answer = client.get("/admin/messages/no-such-id")
    assert answer.status_code == 404
    page = answer.get_data(as_text=True)
    assert "No message no-such-id is recorded" in page and "Back to the dashboard" in page


def test_message_page_when_signed_out_goes_to_the_sign_in_form(app, client):
    message_id = dead_letter(app)
    answer = client.get(f"/admin/messages/{message_id}")
    assert (answer.status_code, answer.location) == (302, "/admin/login")


def test_held_messages_are_listed_per_session(app, client, zapw):
    core = app.extensions["zapa"]
    message_id = send_message.delay(to=TO, text="wait for me", session="offline").id
    core.store.transition(message_id, MessageStatus.HELD, note="session not connected")
    sign_in(client)
    page = dashboard(client)
    held = page.split('id="held"', 1)[1].split("</section>", 1)[0]
    assert "offline 1" in held and message_id in held and "wait for me" not in held


def test_a_message_held_for_its_daily_limit_shows_why_and_health_names_the_session(zapw):
    app = create_app({"TESTING": True, "SETTINGS": load_settings(
        ZAPW_URL=zapw.url, ZAPA_SESSION_DAILY_LIMIT="1")})
    core = app.extensions["zapa"]
    first = send_message.delay(to=TO, text="x", session="s1").id
    assert core.pacing.take(first, core.store.key(first), "s1", TO).counted
    message_id = send_message.delay(to="5511988880000", text="tomorrow", session="s1").id
    assert core.pacing.take(message_id, core.store.key(message_id), "s1", TO).held_until
    core.store.transition(message_id, MessageStatus.HELD, note="daily limit 1 reached",
                          fields={"reason": "daily limit"})
    client = app.test_client()
    sign_in(client)
    page = dashboard(client)
    held = page.split('id="held"', 1)[1].split("</section>", 1)[0]
    assert message_id in held and "<td>daily limit</td>" in held and "tomorrow" not in held
    health = page.split('id="health"', 1)[1].split("</section>", 1)[0]
    assert "daily limit reached by s1" in health


def test_inbound_messages_show_masked_sender_and_type_never_the_text(app, client):
    message = normalize(parse_event(RECEIVED))
    # Handed on to a queue nobody reads here: the page shows where it went.
    app.extensions["zapa"].inbound.receive(
        message, InboundTask("zapa.echo", PreparedMessage("zapa:test:unread", "{}")))
    sign_in(client)
    inbound = dashboard(client).split('id="inbound"', 1)[1].split("</section>", 1)[0]
    assert "551********66" in inbound and "5511977776666" not in inbound
    assert "<td>text</td>" in inbound and "zapa.echo" in inbound
    assert "my private question" not in inbound


def test_recent_messages_show_their_delivery_status_masked_and_without_text(client, redis_db):
    older = send_message.delay(to="5511977776666", text="first secret", session="s1").id
    newer = send_message.delay(to="5511988887777", text="second secret", session="s1").id
    store = services().store
    store.transition(newer, "sending")
    store.transition(newer, "sent", fields={"bridge_message_id": "B1"})
    sign_in(client)
    recent = dashboard(client).split('id="recent"', 1)[1].split("</section>", 1)[0]
    assert recent.index(newer) < recent.index(older)  # newest first
    assert ">sent</span>" in recent and ">queued</span>" in recent
    assert "551********77" in recent and "5511988887777" not in recent
    assert "secret" not in recent


@pytest.mark.slow
def test_dashboard_still_renders_when_redis_is_down(zapw):
    # Open (development, no token): no session is needed to see the page.
    settings = load_settings(ZAPW_URL=zapw.url, REDIS_URL="redis://127.0.0.1:1/0",
                             ZAPA_ENV="development", ZAPA_ADMIN_TOKEN="")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    page = dashboard(client)
    dead = page.split('id="dead-letters"', 1)[1].split("</section>", 1)[0]
    assert "Could not be read: ConnectionError" in dead


def test_sign_in_while_redis_is_down_says_why_and_sets_no_cookie(zapw):
    settings = load_settings(ZAPW_URL=zapw.url, REDIS_URL="redis://127.0.0.1:1/0")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    answer = sign_in(client)
    assert answer.status_code == 503
    assert "Sessions are kept in Redis" in answer.get_data(as_text=True)
    assert client.get_cookie(SESSION_COOKIE) is None


# -- in a real browser ---------------------------------------------------------------------

@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Debian Chromium through its own chromedriver; Selenium Manager never runs."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail("the browser test needs Debian's chromium and chromedriver on PATH: "
                    "apt-get install -y chromium chromium-driver (.ci/run installs them)")
    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--hide-scrollbars", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=chromedriver,
                      log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def screenshot(driver: webdriver.Chrome, path: Path) -> None:
    """The whole page, not only the window."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, height + 120)
    driver.save_screenshot(str(path))


@pytest.mark.slow
def test_operator_signs_in_sees_the_qr_and_replays_a_dead_letter_in_chromium(
        start_worker, start_web, zapw, browser, tmp_path):
    zapw.add_session("main", phone="5511900001111")
    add_qr_waiting_session(zapw, "pending", qr_data_url("pending"), expires_in=50)
    add_qr_waiting_session(zapw, "stale-qr", qr_data_url("stale-qr"), expires_in=-150)
    start_worker()
    dead = send_message.delay(to=TO, text="hello again", session="ghost")
    wait_until(lambda: (r := record_of(dead.id)) and r.status == MessageStatus.FAILED,
               what="the send to an unknown session to become a dead letter")
    web = start_web()
    answer = requests.post(f"{web.url}/api/v1/webhooks/whatsapp", json=RECEIVED,
                           params={"token": os.environ["ZAPA_WEBHOOK_TOKEN"]}, timeout=5)
    assert answer.json() == {"status": "accepted"}
    wait_until(lambda: services().inbound.recent(1), what="the inbound message recorded")
    wait = WebDriverWait(browser, 15)

    browser.get(f"{web.url}/admin/")
    wait.until(expected_conditions.url_to_be(f"{web.url}/admin/login"))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait.until(expected_conditions.url_to_be(f"{web.url}/admin/"))
    wait.until(expected_conditions.presence_of_element_located((By.ID, "dead-letters")))

    qr = browser.find_element(By.CSS_SELECTOR, 'img.qr[data-session="pending"]')
    wait.until(lambda driver: driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", qr))
    assert browser.execute_script("return arguments[0].naturalWidth", qr) == 318
    expired = browser.find_element(By.CSS_SELECTOR, 'figure.qr-expired[data-session="stale-qr"]')
    assert "expired" in expired.text and "next time" in expired.text
    screenshot(browser, tmp_path / "admin-page.png")
    assert (tmp_path / "admin-page.png").stat().st_size > 10_000
    if os.environ.get("ZAPA_UPDATE_SCREENSHOTS"):  # refreshes the picture in the docs
        shutil.copyfile(tmp_path / "admin-page.png", ROOT / "docs" / "admin-page.png")

    browser.find_element(By.CSS_SELECTOR, f'tr[data-message="{dead.id}"] td.id a').click()
    wait.until(expected_conditions.url_to_be(f"{web.url}/admin/messages/{dead.id}"))
    record_card = browser.find_element(By.ID, "message")
    assert record_card.find_element(By.CSS_SELECTOR, "h2 .badge").text == "failed"
    assert "Session ghost not found" in record_card.find_element(By.CSS_SELECTOR, ".reason").text
    assert MASKED_TO in record_card.text
    assert TO not in browser.page_source and "hello again" not in browser.page_source
    screenshot(browser, tmp_path / "admin-message-page.png")

    zapw.add_session("ghost")
    browser.find_element(By.CSS_SELECTOR, "#message button.replay").click()
    wait.until(expected_conditions.url_to_be(f"{web.url}/admin/"))
    wait.until(expected_conditions.text_to_be_present_in_element(
        (By.CSS_SELECTOR, ".flash-ok"), f"Dead letter {dead.id} replayed"))
    record = wait_until(lambda: (r := record_of(dead.id)) and r.status == MessageStatus.SENT
                        and r, what="the replayed message sent")
    assert record.attempts == 2
    assert services().dead_letters.count() == 0
    assert [send.body["text"] for send in zapw.sent_to("ghost")] == ["hello again"]
    screenshot(browser, tmp_path / "admin-page-replayed.png")

    browser.get(f"{web.url}/admin/messages/{dead.id}")
    history = browser.find_elements(By.CSS_SELECTOR, "#history tbody .badge")
    assert [badge.text for badge in history][:3] == ["sent", "sending", "queued"]
    assert record.bridge_message_id and record.bridge_message_id in \
        browser.find_element(By.ID, "message").text
    browser.get(f"{web.url}/admin/messages/no-such-message")
    assert "No message no-such-message is recorded" in browser.page_source
