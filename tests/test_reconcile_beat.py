"""Reconciliation and beat: a real worker pointed at the zapw simulator catches what missed
webhooks and a bridge restart left behind, and two real beat processes share one lock."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import wait_until
from workers.tasks import beat_last_run, health_check, reconcile, send_message, services
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.simulator import Simulator, SimulatorConfig
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

TO = "5511988887777"
MAINTENANCE_QUEUE = "zapa.maintenance"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """zapw with webhooks off: session changes reach us only through reconciliation."""
    with Simulator(SimulatorConfig(connect_delay=None)) as simulator:
        yield simulator


def record_status(message_id: str) -> MessageStatus | None:
    record = services().store.get(message_id)
    return None if record is None else record.status


def wait_status(message_id: str, status: MessageStatus) -> None:
    wait_until(lambda: record_status(message_id) == status, what=f"{message_id} {status}")


def queued_task_names(redis_db: Any, queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in redis_db.lrange(queue, 0, -1)]


def test_reconcile_releases_a_held_message_when_the_connect_webhook_was_missed(
        sim, start_worker):
    sim.add_session("s1")
    start_worker(ZAPW_URL=sim.url)
    sim.disconnect("s1")
    message_id = send_message.delay(to=TO, text="waiting", session="s1").id
    wait_status(message_id, MessageStatus.HELD)

    sim.connect("s1")  # the QR is scanned again; zapw posts no webhook
    assert record_status(message_id) == MessageStatus.HELD
    assert sim.sends() == []

    reconcile.delay()
    wait_status(message_id, MessageStatus.SENT)
    assert [send.body for send in sim.sends("s1")] == [
        {"to": TO, "type": "text", "text": "waiting"}]
    assert services().held.count("s1") == 0
    assert services().sessions.get("s1").status == "connected"


def test_reconcile_creates_the_configured_sessions_the_bridge_lacks(sim, start_worker):
    sim.add_session("s1")
    start_worker(ZAPW_URL=sim.url, ZAPA_SESSIONS="s1,s9")
    assert sim.session("s9") is None

    reconcile.delay()
    created = wait_until(lambda: sim.session("s9"), what="session s9 on the bridge")
    assert created["status"] in ("qr_waiting", "connected")
    assert created["qrCode"].startswith("data:image/png;base64,")
    assert [s["id"] for s in sim.bridge.list_sessions()] == ["s1", "s9"]
    wait_until(lambda: services().sessions.get("s9") is not None, what="s9 in the registry")


def test_health_check_resyncs_at_once_after_the_bridge_restarted(
        sim, start_worker, redis_db):
    sim.add_session("s9")
    worker = start_worker(ZAPW_URL=sim.url, ZAPA_SESSIONS="s9")
    health_check.delay()
    wait_until(lambda: redis_db.get(keys.HEALTH_BRIDGE_STARTED),
               what="first bridge start time recorded")
    assert "event=bridge.restarted" not in worker.log()

    sim.restart(downtime=0, drop_sessions=True)
    assert sim.session("s9") is None
    health_check.delay()
    recreated = wait_until(lambda: sim.session("s9"), what="s9 recreated after the restart")
    assert recreated["status"] == "qr_waiting"
    assert "event=bridge.restarted action=\"full resync\"" in worker.log()


def test_two_beats_started_together_dispatch_the_periodic_tasks_once(start_beat, redis_db):
    env = {"ZAPA_RECONCILE_INTERVAL": "1", "ZAPA_HEALTH_INTERVAL": "1"}
    started = time.monotonic()
    first = start_beat(**env)
    second = start_beat(**env)
    both_running = time.monotonic()

    def reconciles_queued() -> int:
        return queued_task_names(redis_db, MAINTENANCE_QUEUE).count("zapa.reconcile")

    # Both run for at least 4 s, and that is enough for four rounds of a 1 s schedule.
    wait_until(lambda: time.monotonic() - both_running >= 4 and reconciles_queued() >= 4,
               timeout=15, what="4 s and four reconciles queued")
    reconciles = reconciles_queued()
    elapsed = time.monotonic() - started

    assert sorted([first.dispatches() > 0, second.dispatches() > 0]) == [False, True]
    # One per second from one beat (two beats would queue about twice as many).
    assert 4 <= reconciles <= elapsed + 2, (reconciles, elapsed)
    holder, standby = (first, second) if first.dispatches() else (second, first)
    assert "beat: Acquired lock" in holder.log()
    assert "beat: Acquired lock" not in standby.log()
    assert standby.process.poll() is None  # alive, waiting for the lock
    assert redis_db.exists("zapa:beat:lock") == 1


def test_beat_last_run_read_from_redbeat_is_recent_while_a_beat_runs(start_beat, redis_db):
    assert beat_last_run() is None
    start_beat(ZAPA_HEALTH_INTERVAL="1", ZAPA_RECONCILE_INTERVAL="30")
    last = wait_until(beat_last_run, timeout=10, what="health check dispatched by beat")
    assert time.time() - 5 < last <= time.time()
    wait_until(lambda: "zapa.health_check" in queued_task_names(redis_db, MAINTENANCE_QUEUE),
               what="health check on the maintenance queue")
    message = json.loads(redis_db.lindex(MAINTENANCE_QUEUE, -1))
    assert message["headers"]["expires"] is not None
    assert json.loads(base64.b64decode(message["body"]))[:2] == [[], {}]


def test_a_refused_api_key_is_reported_as_unauthorized_not_unreachable(start_worker, redis_db):
    with Simulator(SimulatorConfig(connect_delay=None, api_key="right-key")) as keyed:
        worker = start_worker(ZAPW_URL=keyed.url, ZAPW_API_KEY="wrong-key")
        reconcile.delay()
        wait_until(lambda: "event=reconcile.bridge_" in worker.log(), what="reconcile logged")
    log = worker.log()
    assert "event=reconcile.bridge_unauthorized" in log
    assert "hint=\"check ZAPW_API_KEY\"" in log
    assert "bridge_unreachable" not in log
    assert "wrong-key" not in log
    assert "'unauthorized': True" in log


def test_a_session_the_bridge_lost_is_made_again_when_messages_wait_for_it(
        sim, start_worker):
    """Not in ZAPA_SESSIONS, but the registry knew it and sends wait for it: a restart lost
    it, so reconciliation creates it again (for its QR to be scanned)."""
    sim.add_session("s2")
    start_worker(ZAPW_URL=sim.url)
    reconcile.delay()
    wait_until(lambda: (s := services().sessions.get("s2")) and s.connected, what="s2 known")
    sim.restart(downtime=0, drop_sessions=True)
    message_id = send_message.delay(to=TO, text="wait for s2", session="s2").id
    wait_status(message_id, MessageStatus.HELD)
    assert services().store.get(message_id).reason == "session missing on bridge"
    recreated = wait_until(lambda: sim.session("s2"), what="s2 made again")
    assert recreated["status"] == "qr_waiting"
    sim.connect("s2")  # the QR scanned; webhooks are off here, so reconciliation sees it
    reconcile.delay()
    wait_status(message_id, MessageStatus.SENT)
    assert [send.body["text"] for send in sim.sends("s2")] == ["wait for s2"]
