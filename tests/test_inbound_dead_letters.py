"""Events the worker cannot apply: none loops, each ends handled or as an inbound dead letter
(kept with its body, listed, replayed and purged through the admin API, the page and the
CLI, counted in /metrics and health), within a counted number of attempts."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_until
from tests.test_events import event, received, text
from workers.tasks import services
from zapa_bridge.bridge.client import SessionInfo
from zapa_bridge.bridge.sessions import SessionRegistry
from zapa_bridge.cli import main
from zapa_bridge.config import load_settings
from zapa_bridge.inbound.failures import decide
from zapa_bridge.inbound.messages import InboundLog
from zapa_bridge.outbound.retry_policy import RetryPolicy
from zapa_bridge.store import keys
from zapa_bridge.web import create_app

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {os.environ['ZAPA_ADMIN_TOKEN']}"}
API = "/api/v1/integration"
HUGE = int("9" * 400)


def runs_of(worker, task_id: str) -> int:
    """How many times the worker took the task `task_id` (first delivery and retries)."""
    return len(re.findall(rf"Task zapa\.handle_event\[{re.escape(task_id)}\] received",
                          worker.log()))


def queue_event(body: Any, task_id: str) -> None:
    """Put a `handle_event` message on the events queue as the intake would have."""
    message = services().publisher.prepare_event(body, task_id=task_id, kwargsrepr="")
    services().redis.lpush(message.queue, message.payload)


def dead_letter(task_id: str):
    return wait_until(lambda: services().inbound_dead_letters.get(task_id),
                      what=f"inbound dead letter {task_id}")


@pytest.fixture
def admin(redis_db, zapw):
    app = create_app({"TESTING": True, "SETTINGS": load_settings(ZAPW_URL=zapw.url)})
    yield app.test_client()
    app.extensions["zapa"].bridge.close()


def scrape(client) -> dict[str, float]:
    text_body = client.get("/metrics").get_data(as_text=True)
    return {sample.name: sample.value for family in text_string_to_metric_families(text_body)
            for sample in family.samples if not sample.labels}


# -- the registry: a snapshot never blocks a webhook ------------------------------------------

def test_a_session_webhook_applies_to_a_session_first_seen_by_reconciliation(redis_db):
    registry = SessionRegistry(redis_db)
    registry.replace_from_bridge([SessionInfo("s1", "qr_waiting")])
    assert registry.apply_event("s1", "connected", at=1795599312427,
                                phone_number="1234567890", name="Test User")
    state = registry.get("s1")
    assert (state.status, state.event_at, state.phone_number) == (
        "connected", 1795599312427, "1234567890")
    # Order still holds after the snapshot: an older event loses.
    assert not registry.apply_event("s1", "disconnected", at=1795599000000)


def test_a_session_the_bridge_lost_is_kept_as_missing_until_it_comes_back(redis_db):
    registry = SessionRegistry(redis_db)
    registry.replace_from_bridge([SessionInfo("s1", "connected", phone_number="1234567890")])
    [lost] = registry.replace_from_bridge([])
    assert (lost.id, lost.status, lost.reason) == ("s1", "missing",
                                                   "session missing on bridge")
    assert registry.session_for_phone("1234567890") == "s1"
    registry.replace_from_bridge([SessionInfo("s1", "qr_waiting")])
    assert (registry.get("s1").status, registry.get("s1").reason) == ("qr_waiting", None)


def test_a_missing_session_is_forgotten_after_it_was_missing_long_enough(redis_db):
    registry = SessionRegistry(redis_db)
    registry.replace_from_bridge([SessionInfo("s1", "connected")])
    registry.replace_from_bridge([])
    assert registry.replace_from_bridge([], missing_kept=0.0) == []
    assert registry.get("s1") is None


def test_marking_a_session_missing_is_refused_when_it_changed_since_the_404(redis_db):
    registry = SessionRegistry(redis_db)
    registry.apply_event("s1", "disconnected", at=1000)
    learnt_at = registry.get("s1").updated - 1  # the 404 came before this event
    assert not registry.mark_missing("s1", learnt_at=learnt_at)
    assert registry.get("s1").status == "disconnected"
    assert registry.mark_missing("s1", learnt_at=registry.get("s1").updated)
    assert registry.get("s1").status == "missing"


# -- the decision --------------------------------------------------------------------------

def test_a_lost_connection_is_retried_with_capped_backoff_then_given_up():
    import redis

    policy = RetryPolicy(max_retries=3, base=1.0, cap=4.0)
    delays = [decide(redis.ConnectionError("gone"), failures=n, policy=policy).retry_in
              for n in (1, 2, 3)]
    assert all(d is not None and 0 < d <= 4.0 for d in delays)
    final = decide(redis.ConnectionError("gone"), failures=4, policy=policy)
    assert (final.retry_in, final.reason) == (
        None, "gave up after 4 attempts: ConnectionError: gone")


def test_a_script_error_or_a_bad_value_is_never_retried():
    import redis

    policy = RetryPolicy(max_retries=3, base=1.0, cap=4.0)
    for error in (redis.ResponseError("user_script:1: attempt to compare nil"),
                  ValueError("bad"), RecursionError("deep")):
        assert decide(error, failures=1, policy=policy).retry_in is None


# -- every shape that looped, through a real worker ---------------------------------------

def test_a_400_digit_timestamp_is_refused_at_the_edge_naming_the_field(redis_db):
    client = create_app({"TESTING": True}).test_client()
    body = event("session.connected", {"phoneNumber": "1234567890"}, timestamp=HUGE)
    answer = client.post("/api/v1/webhooks/whatsapp", data=json.dumps(body),
                         content_type="application/json",
                         query_string={"token": os.environ["ZAPA_WEBHOOK_TOKEN"]})
    assert answer.status_code == 422
    assert answer.get_json()["error"]["field"] == "timestamp"


def test_an_event_already_queued_with_a_400_digit_timestamp_is_dead_on_its_first_attempt(
        start_worker, zapw):
    worker = start_worker()
    queue_event(event("session.connected", {"phoneNumber": "1234567890"}, timestamp=HUGE),
                "huge-timestamp")
    letter = dead_letter("huge-timestamp")
    assert (letter.attempts, letter.event_type, letter.session) == (
        1, "session.connected", "s1")
    assert letter.error == "InvalidEvent: timestamp: must be epoch milliseconds"
    assert letter.body["timestamp"] == HUGE
    assert runs_of(worker, "huge-timestamp") == 1


def test_a_lone_surrogate_in_a_session_name_is_refused_at_the_edge_or_dead_in_the_worker(
        start_worker, zapw):
    body = event("session.connected", {"phoneNumber": "1234567890", "name": "Bad \ud800"})
    answer = create_app({"TESTING": True}).test_client().post(
        "/api/v1/webhooks/whatsapp", data=json.dumps(body),
        query_string={"token": os.environ["ZAPA_WEBHOOK_TOKEN"]},
        headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json["error"]["field"]) == (422, "data.name")
    # One queued before the edge refused such strings (or spooled then) ends a dead letter.
    message = services().publisher.prepare_event(body, task_id="surrogate-1", kwargsrepr="")
    services().redis.lpush(message.queue, message.payload)
    worker = start_worker()
    [letter] = wait_until(lambda: services().inbound_dead_letters.list(),
                          what="a dead letter")
    assert letter.attempts == 1
    assert letter.error == "InvalidEvent: data.name: is not valid UTF-8 (a lone surrogate)"
    assert letter.body["data"]["name"] == "Bad \ud800"
    assert runs_of(worker, letter.id) == 1
    # The letter is in Redis a moment before the worker's line is written.
    wait_until(lambda: "event.dead_letter" in worker.log(), what="the dead letter's line")
    assert "\ud800" not in worker.log() and "Bad " not in worker.log()


def test_a_message_id_ending_in_routed_is_its_own_message(start_worker, zapw, post_event):
    zapw.add_session("s1")
    start_worker()
    assert post_event(received(text("r2", "first"))) == "accepted"
    wait_until(lambda: len(zapw.sent_to("s1")) == 1, what="echo of r2")
    assert post_event(received(text("r2:routed", "second"))) == "accepted"
    wait_until(lambda: len(zapw.sent_to("s1")) == 2, what="echo of r2:routed")
    assert sorted(send.body["text"] for send in zapw.sent_to("s1")) == [
        "echo: first", "echo: second"]
    assert services().inbound_dead_letters.count() == 0
    # Each hand-on mark is its own record's field: handled again, neither goes twice.
    log = InboundLog(services().redis, retention=60)
    assert all(log.redis.hget(log.key(keys.inbound_id("s1", mid)), "routed") == "1"
               for mid in ("r2", "r2:routed"))


# -- operators: list, replay, purge, counts ------------------------------------------------

@pytest.fixture
def blocked_event(start_worker, zapw, post_event):
    """A message.received whose record key holds a value of the wrong type (state broken by
    hand): the script fails with WRONGTYPE every time, until an operator mends it."""
    zapw.add_session("s1")
    worker = start_worker()
    services().redis.set(services().inbound.key("s1:3EB0BLOCKED"), "not a hash")
    assert post_event(received(text("3EB0BLOCKED", "please answer"))) == "accepted"
    [letter] = wait_until(lambda: services().inbound_dead_letters.list(), what="dead letter")
    return worker, letter


def test_a_dead_lettered_event_is_listed_with_its_body_counted_and_degrades_health(
        blocked_event, admin, zapw):
    worker, letter = blocked_event
    assert letter.error.startswith("ResponseError: WRONGTYPE")
    assert runs_of(worker, letter.id) == 1
    listed = admin.get(f"{API}/inbound-dead-letters", headers=ADMIN).get_json()
    assert listed["count"] == 1
    [entry] = listed["inbound_dead_letters"]
    assert (entry["id"], entry["event_type"], entry["session"], entry["attempts"]) == (
        letter.id, "message.received", "s1", 1)
    assert entry["body"]["data"]["text"] == "please answer"
    metrics = scrape(admin)
    assert (metrics["zapa_inbound_dead_letters"], metrics["zapa_inbound_dead_lettered_total"]) \
        == (1.0, 1.0)
    # A fresh snapshot: a stored one may predate the dead letter.
    health = admin.post(f"{API}/reinitialize", headers=ADMIN).get_json()["health"]
    component = health["components"]["inbound_dead_letters"]
    assert (component["status"], component["metadata"]) == ("degraded", {"count": 1})
    assert zapw.sent_to() == []


def test_replaying_a_mended_event_hands_it_on_once_and_empties_the_list(
        blocked_event, admin, zapw):
    _, letter = blocked_event
    services().redis.delete(services().inbound.key("s1:3EB0BLOCKED"))  # the operator mends it
    answer = admin.post(f"{API}/inbound-dead-letters/{letter.id}/replay", headers=ADMIN)
    assert answer.status_code == 200
    assert answer.get_json()["replays"] == 1
    assert "body" not in answer.get_json()
    wait_until(lambda: zapw.sent_to("s1"), what="the echo of the replayed event")
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["echo: please answer"]
    assert admin.get(f"{API}/inbound-dead-letters", headers=ADMIN).get_json()["count"] == 0
    assert scrape(admin)["zapa_inbound_dead_letters"] == 0.0
    again = admin.post(f"{API}/inbound-dead-letters/{letter.id}/replay", headers=ADMIN)
    assert again.status_code == 404


def test_an_event_that_fails_again_after_a_replay_comes_back_with_its_replay_count(
        blocked_event, admin):
    worker, letter = blocked_event
    assert admin.post(f"{API}/inbound-dead-letters/{letter.id}/replay",
                      headers=ADMIN).status_code == 200
    again = wait_until(lambda: (found := services().inbound_dead_letters.list())
                       and found[0].replays == 1 and found[0], what="failed again")
    assert (again.id, again.attempts) == (letter.id, 1)
    assert runs_of(worker, letter.id) == 2
    assert scrape(admin)["zapa_inbound_dead_lettered_total"] == 2.0


def test_purge_deletes_every_inbound_dead_letter(blocked_event, admin):
    answer = admin.delete(f"{API}/inbound-dead-letters", headers=ADMIN)
    assert answer.get_json() == {"purged": 1}
    assert services().inbound_dead_letters.count() == 0
    assert services().inbound_dead_letters.get(blocked_event[1].id) is None


def test_the_cli_lists_without_bodies_replays_and_purges(blocked_event, zapw):
    _, letter = blocked_event
    runner = CliRunner()
    listed = runner.invoke(main, ["inbound-dead-letters", "list"], catch_exceptions=False)
    [entry] = json.loads(listed.output)
    assert (entry["id"], entry["error"][:23], "body" in entry) == (
        letter.id, "ResponseError: WRONGTYP", False)
    with_body = runner.invoke(main, ["inbound-dead-letters", "list", "--body"])
    assert json.loads(with_body.output)[0]["body"]["data"]["messageId"] == "3EB0BLOCKED"

    replayed = runner.invoke(main, ["inbound-dead-letters", "replay", letter.id])
    assert (replayed.exit_code, replayed.output) == (0, f"{letter.id} queued again (replay 1)\n")
    unknown = runner.invoke(main, ["inbound-dead-letters", "replay", "nope"])
    assert unknown.exit_code == 1
    assert "not an inbound dead letter" in unknown.output
    wait_until(lambda: services().inbound_dead_letters.count() == 1, what="failed again")
    purged = runner.invoke(main, ["inbound-dead-letters", "purge", "--yes"])
    assert purged.output == "purged 1\n"


def test_the_admin_page_lists_it_without_the_text_and_replays_it(blocked_event, zapw):
    from tests.test_admin_page import csrf_token, dashboard, sign_in

    _, letter = blocked_event
    client = create_app({"TESTING": True,
                         "SETTINGS": load_settings(ZAPW_URL=zapw.url)}).test_client()
    sign_in(client)
    page = dashboard(client)
    assert f'data-event="{letter.id}"' in page
    assert "please answer" not in page
    services().redis.delete(services().inbound.key("s1:3EB0BLOCKED"))
    answer = client.post(f"/admin/inbound-dead-letters/{letter.id}/replay",
                         data={"csrf_token": csrf_token(page)}, follow_redirects=True)
    assert f"Event {letter.id} replayed" in answer.get_data(as_text=True)
    wait_until(lambda: zapw.sent_to("s1"), what="the echo of the replayed event")
    assert "No inbound dead letters." in dashboard(client)
