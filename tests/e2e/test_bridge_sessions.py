"""The sessions' paths operators take, in their order, against the simulator's real-zapw
defaults: `ZAPA_SESSIONS` on a bridge that has none yet, a session made by reconciliation
and connected by zapw's webhook, and a bridge restart that forgets its sessions."""

from __future__ import annotations

import os
import re

import pytest

from tests.e2e.stack import S, Stack, statuses
from tests.helpers import wait_until
from workers.tasks import reconcile, send_message, services
from zapa_bridge.bridge.sessions import MISSING_REASON
from zapa_bridge.config import load_settings
from zapa_bridge.web import create_app

pytestmark = pytest.mark.slow

TO = "5511988887777"
NO_SESSIONS = {"sessions": (), "connect_delay": 1.0}


def session_events_handled(log: str, outcome: str) -> int:
    return len(re.findall(rf"Task zapa\.handle_event\[[^\]]+\] succeeded in [0-9.e-]+s: "
                          rf"'{re.escape(outcome)}", log))


def assert_no_event_loop(e2e: Stack) -> None:
    log = e2e.worker.log()
    assert "event.retry" not in log
    assert "requeue" not in log
    assert "Traceback" not in log
    assert services().inbound_dead_letters.count() == 0
    assert services().dead_letters.count() == 0


@pytest.mark.worker_env(ZAPA_SESSIONS="s1")
@pytest.mark.sim_config(**NO_SESSIONS)
def test_a_message_queued_before_its_managed_session_exists_is_sent_once_it_connects(
        e2e: Stack):
    message_id = send_message.delay(to=TO, text="first words", session="s1").id
    # zapw answers 404: the session is ours (ZAPA_SESSIONS), so the message waits and a
    # reconciliation is asked for at once, which creates the session on the bridge.
    held = e2e.wait_status(message_id, S.HELD)
    assert held.reason == MISSING_REASON
    wait_until(lambda: e2e.sim.session("s1"), timeout=10, what="s1 created on the bridge")
    connected_at = wait_until(
        lambda: (s := e2e.sim.session("s1")) and s["status"] == "connected" and s,
        timeout=10, what="s1 connected")
    record = e2e.wait_status(message_id, S.SENT, timeout=15)
    assert [send.body["text"] for send in e2e.sim.sends("s1")] == ["first words"]
    assert "held" in statuses(record)
    assert connected_at["phoneNumber"] == "1234567890"
    # The send followed the connect within seconds, through the webhook, not a beat tick.
    assert record.updated - held.updated < 10
    assert session_events_handled(e2e.worker.log(), "connected, released") == 1
    assert_no_event_loop(e2e)


@pytest.mark.worker_env(ZAPA_SESSIONS="s1")
@pytest.mark.sim_config(**NO_SESSIONS)
def test_the_webhook_of_a_session_made_by_reconciliation_is_applied_once(e2e: Stack):
    reconcile.delay()  # what beat does at its first tick
    e2e.wait_session("s1", "qr_waiting")
    e2e.wait_session("s1", "connected")
    state = services().sessions.get("s1")
    assert (state.phone_number, state.name) == ("1234567890", "Test User")
    assert isinstance(state.event_at, int)
    wait_until(lambda: session_events_handled(e2e.worker.log(), "connected") == 1,
               what="session.connected handled")
    message_id = send_message.delay(to=TO, text="now", session="s1").id
    e2e.wait_status(message_id, S.SENT)
    assert session_events_handled(e2e.worker.log(), "connected") == 1
    assert_no_event_loop(e2e)


def test_sends_after_a_bridge_restart_that_forgot_the_session_wait_and_then_go(e2e: Stack):
    """A, known to the registry but not in ZAPA_SESSIONS: zapw's mock mode forgets it on a
    restart. The next send gets 404; it must be held, A made again, and the send go."""
    first = send_message.delay(to=TO, text="before", session="A").id
    e2e.wait_status(first, S.SENT)
    e2e.sim.restart(downtime=0.5, drop_sessions=True)
    assert e2e.sim.session("A") is None

    ids = [send_message.delay(to=TO, text=f"after {i}", session="A").id for i in range(3)]
    wait_until(lambda: e2e.sim.session("A"), timeout=10, what="A made again")
    records = e2e.wait_all(ids, {S.SENT}, timeout=20)
    assert any(r.reason is None and "held" in statuses(r) for r in records)
    assert [send.body["text"] for send in e2e.sim.sends("A")] == [
        "before", "after 0", "after 1", "after 2"]
    assert services().sessions.get("A").status == "connected"
    assert_no_event_loop(e2e)


def test_a_session_deleted_through_the_admin_api_is_no_longer_waited_for(e2e: Stack):
    """Deleted on purpose, a session is forgotten: a later send to it is a dead letter."""
    client = create_app({"TESTING": True,
                         "SETTINGS": load_settings(ZAPW_URL=e2e.sim.url)}).test_client()
    answer = client.delete("/api/v1/integration/sessions/B", headers={
        "Authorization": f"Bearer {os.environ['ZAPA_ADMIN_TOKEN']}"})
    assert answer.status_code == 204
    assert services().sessions.get("B") is None
    message_id = send_message.delay(to=TO, text="to nobody", session="B").id
    record = e2e.wait_status(message_id, S.FAILED)
    assert record.reason == "SessionNotFound: Session B not found"
