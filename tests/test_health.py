"""The health checks, each component driven into its states by real conditions: the zapw
simulator over HTTP, the suite's Redis, real queued messages and real worker processes."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.helpers import recipient, wait_until
from tests.zapw_stub import ZapwStub
from workers.broker import KombuRedisLayout
from workers.celery_app import app
from workers.tasks import send_message, services
from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.config import load_settings
from zapa_bridge.devtools.embedded_redis import free_port
from zapa_bridge.ops.health import Health, HealthChecker
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.simulator import Simulator, SimulatorConfig
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

TO = "5511988887777"
_recipients = itertools.count()
QUEUES = [queue.name for queue in app.conf.task_queues]
HEALTHY, DEGRADED, UNHEALTHY = Health.HEALTHY, Health.DEGRADED, Health.UNHEALTHY

MakeChecker = Callable[..., HealthChecker]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(connect_delay=None)) as simulator:
        yield simulator


@pytest.fixture
def make_checker(redis_db: redis.Redis) -> Iterator[MakeChecker]:
    """A HealthChecker on the suite's Redis and the given bridge; its HTTP pool is closed
    when the test ends."""
    clients: list[BridgeClient] = []

    def make(bridge_url: str, *, beat_last_run: Callable[[], float | None] = time.time,
             client: redis.Redis | None = None, **settings: Any) -> HealthChecker:
        bridge = BridgeClient(bridge_url, timeout=2, connect_timeout=1)
        clients.append(bridge)
        return HealthChecker(load_settings(ZAPW_URL=bridge_url, **settings),
                             client or redis_db, bridge, KombuRedisLayout(app), QUEUES,
                             beat_last_run=beat_last_run)

    yield make
    for bridge in clients:
        bridge.close()


def queue_sends(count: int) -> list[str]:
    """Real sends on zapa.send.default; no worker takes them."""
    return [send_message.delay(to=recipient(next(_recipients)), text="x", session="s1").id
            for _ in range(count)]


def wait_status(message_id: str, status: MessageStatus) -> None:
    wait_until(lambda: (r := services().store.get(message_id)) is not None
               and r.status == status, what=f"{message_id} {status}")


def statuses(snapshot: Any) -> dict[str, str]:
    return {name: str(component.status) for name, component in snapshot.components.items()}


# -- bridge --------------------------------------------------------------------------------

def test_bridge_is_unhealthy_once_the_simulator_stops(make_checker):
    with Simulator(SimulatorConfig(connect_delay=None)) as stopped:
        stopped.add_session("s1")
        checker = make_checker(stopped.url)
        assert checker.check_bridge().status == HEALTHY
    bridge = checker.check_bridge()
    assert bridge.status == UNHEALTHY
    assert "unreachable" in bridge.message
    assert bridge.metadata == {"url": stopped.url}


def test_bridge_is_unhealthy_when_nothing_listens_at_its_url(make_checker):
    url = f"http://127.0.0.1:{free_port()}"
    bridge = make_checker(url).check_bridge()
    assert (bridge.status, bridge.message) == (
        UNHEALTHY, "bridge unreachable: Connection refused")


def test_bridge_with_no_sessions_is_degraded(sim, make_checker):
    bridge = make_checker(sim.url).check_bridge()
    assert (bridge.status, bridge.message) == (DEGRADED, "bridge up, but it has no sessions")
    assert bridge.metadata["sessions"] == 0


def test_bridge_with_a_disconnected_session_is_degraded_and_names_it(sim, make_checker):
    sim.add_session("s1")
    sim.add_session("s2")
    sim.disconnect("s2")
    bridge = make_checker(sim.url).check_bridge()
    assert (bridge.status, bridge.message) == (DEGRADED, "1 of 2 sessions connected")
    assert bridge.metadata["not_connected"] == ["s2"]


def test_bridge_with_a_session_waiting_for_its_qr_is_degraded(sim, make_checker):
    sim.add_session("s1")
    sim.add_session("new", connected=False)
    bridge = make_checker(sim.url).check_bridge()
    assert bridge.status == DEGRADED
    assert bridge.metadata["not_connected"] == ["new"]


def test_bridge_with_every_session_connected_is_healthy(sim, make_checker):
    sim.add_session("s1")
    sim.add_session("s2")
    bridge = make_checker(sim.url).check_bridge()
    assert (bridge.status, bridge.message) == (HEALTHY, "all 2 sessions connected")
    assert (bridge.metadata["sessions"], bridge.metadata["connected"]) == (2, 2)


def test_bridge_restart_is_detected_when_its_uptime_goes_down(sim, make_checker):
    sim.add_session("s1")
    checker = make_checker(sim.url)
    # Let the uptime grow clearly above what it reads right after the restart.
    wait_until(lambda: sim.bridge.health()["uptime"] > 0.2, what="simulator uptime > 0.2 s")
    checker.run()
    assert checker.bridge_restarted is False
    checker.run()
    assert checker.bridge_restarted is False

    sim.restart(downtime=0)
    snapshot = checker.run()
    assert checker.bridge_restarted is True
    assert snapshot.components["bridge"].metadata["restarted"] is True

    checker.run()
    assert checker.bridge_restarted is False


# -- queues --------------------------------------------------------------------------------

def test_queues_grade_by_depth_against_the_warn_and_critical_thresholds(sim, make_checker):
    checker = make_checker(sim.url, ZAPA_QUEUE_DEPTH_WARN=2, ZAPA_QUEUE_DEPTH_CRITICAL=4)
    grades = [checker.check_queues().status]
    for _ in range(4):
        queue_sends(1)
        grades.append(checker.check_queues().status)
    assert grades == [HEALTHY, HEALTHY, DEGRADED, DEGRADED, UNHEALTHY]
    queues = checker.check_queues()
    assert queues.metadata["zapa.send.default"]["depth"] == 4
    assert queues.message.startswith("zapa.send.default: 4 waiting")


def test_queues_grade_by_the_age_of_the_oldest_waiting_message(sim, make_checker):
    checker = make_checker(sim.url, ZAPA_QUEUE_AGE_WARN=1.0, ZAPA_QUEUE_AGE_CRITICAL=2.0)
    assert checker.check_queues().status == HEALTHY
    queue_sends(1)
    fresh = checker.check_queues()
    assert fresh.status == HEALTHY
    assert fresh.metadata["zapa.send.default"]["oldest_age"] < 1.0

    degraded = wait_until(lambda: (q := checker.check_queues()).status == DEGRADED and q,
                          timeout=10, what="queues degraded by age")
    assert 1.0 <= degraded.metadata["zapa.send.default"]["oldest_age"] < 2.0
    unhealthy = wait_until(lambda: (q := checker.check_queues()).status == UNHEALTHY and q,
                           timeout=10, what="queues unhealthy by age")
    assert unhealthy.metadata["zapa.send.default"]["oldest_age"] >= 2.0


# -- workers -------------------------------------------------------------------------------

def test_workers_are_unhealthy_without_a_heartbeat_and_healthy_once_one_runs(
        sim, make_checker, start_worker, redis_db):
    checker = make_checker(sim.url)
    none = checker.check_workers()
    assert (none.status, none.message, none.metadata) == (
        UNHEALTHY, "no worker heartbeat", {"workers": []})

    start_worker()
    wait_until(lambda: list(redis_db.scan_iter(keys.WORKERS_PATTERN)), what="heartbeat key")
    alive = checker.check_workers()
    assert (alive.status, alive.message) == (HEALTHY, "1 worker alive")
    [hostname] = alive.metadata["workers"]
    assert hostname.startswith("test-worker0@")
    assert redis_db.exists(keys.worker(hostname)) == 1


# -- beat ----------------------------------------------------------------------------------

def test_beat_is_unhealthy_when_it_has_never_run(sim, make_checker):
    beat = make_checker(sim.url, beat_last_run=lambda: None).check_beat()
    assert (beat.status, beat.message) == (UNHEALTHY, "beat has not run")


def test_beat_is_unhealthy_when_it_last_ran_more_than_three_intervals_ago(sim, make_checker):
    beat = make_checker(sim.url, ZAPA_HEALTH_INTERVAL=10,
                        beat_last_run=lambda: time.time() - 31).check_beat()
    assert beat.status == UNHEALTHY
    assert beat.message == "beat last ran 31 s ago"


def test_beat_is_healthy_when_it_ran_within_three_intervals(sim, make_checker):
    beat = make_checker(sim.url, ZAPA_HEALTH_INTERVAL=10,
                        beat_last_run=lambda: time.time() - 25).check_beat()
    assert (beat.status, beat.message) == (HEALTHY, "beat ran 25 s ago")


# -- held messages and dead letters --------------------------------------------------------

def test_held_messages_turn_from_healthy_to_degraded_when_a_send_is_held(
        make_checker, start_worker, zapw: ZapwStub):
    zapw.add_session("s1", connected=False)
    checker = make_checker(zapw.url)
    assert checker.check_held().status == HEALTHY
    start_worker()
    message_id = send_message.delay(to=TO, text="x", session="s1").id
    wait_status(message_id, MessageStatus.HELD)
    held = checker.check_held()
    assert (held.status, held.message, held.metadata) == (
        DEGRADED, "1 message held for offline sessions", {"per_session": {"s1": 1}})


def test_dead_letters_turn_from_healthy_to_degraded_when_a_send_fails(
        make_checker, start_worker, zapw: ZapwStub):
    checker = make_checker(zapw.url)
    assert checker.check_dead_letters().status == HEALTHY
    start_worker()
    message_id = send_message.delay(to=TO, text="x", session="ghost").id
    wait_status(message_id, MessageStatus.FAILED)
    dead = checker.check_dead_letters()
    assert (dead.status, dead.message, dead.metadata) == (
        DEGRADED, "1 dead letter to review", {"count": 1})


# -- redis, the overall status and the stored snapshot -------------------------------------

def test_unreachable_redis_makes_the_snapshot_unhealthy(sim, make_checker):
    down = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True,
                                socket_connect_timeout=1)
    try:
        snapshot = make_checker(sim.url, client=down).run()
    finally:
        down.close()
    assert snapshot.components["redis"].status == UNHEALTHY
    assert snapshot.components["redis"].message.startswith("redis unreachable")
    assert snapshot.overall == UNHEALTHY


def test_overall_status_is_the_worst_components(sim, make_checker, start_worker, redis_db):
    sim.add_session("s1")
    start_worker()
    wait_until(lambda: list(redis_db.scan_iter(keys.WORKERS_PATTERN)), what="heartbeat key")

    everything_fine = make_checker(sim.url).run()
    assert set(statuses(everything_fine).values()) == {"healthy"}
    assert everything_fine.overall == HEALTHY

    sim.disconnect("s1")
    one_degraded = make_checker(sim.url).run()
    assert {k: v for k, v in statuses(one_degraded).items() if v != "healthy"} == {
        "bridge": "degraded"}
    assert one_degraded.overall == DEGRADED

    also_unhealthy = make_checker(sim.url, beat_last_run=lambda: None).run()
    assert {k: v for k, v in statuses(also_unhealthy).items() if v != "healthy"} == {
        "bridge": "degraded", "beat": "unhealthy"}
    assert also_unhealthy.overall == UNHEALTHY
    assert also_unhealthy.as_dict()["overall_status"] == "unhealthy"


def test_snapshot_is_stored_and_latest_returns_it_with_when_it_was_taken(
        sim, make_checker, redis_db):
    sim.add_session("s1")
    checker = make_checker(sim.url)
    assert checker.latest() is None
    before = time.time()
    snapshot = checker.run()
    after = time.time()
    assert redis_db.exists(keys.HEALTH_SNAPSHOT) == 1

    latest = make_checker(sim.url).latest()
    assert latest is not None
    assert latest.as_dict() == snapshot.as_dict()
    assert before <= latest.taken_at <= after
    assert sorted(latest.components) == ["beat", "bridge", "dead_letters", "held_messages",
                                         "inbound_dead_letters", "pacing", "queues", "redis",
                                         "webhooks", "workers"]
