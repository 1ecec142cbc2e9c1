"""Recovery from zapw's GET /events on the suite's Redis, the simulator as zapw: what never
came as a webhook is taken in once, what did come is left alone, and delivery is judged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.tasks import health_checker, services
from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.inbound.recovery import (
    NOT_POSTING,
    DeliveryState,
    EventRecovery,
    recovered_counts,
)
from zapa_bridge.inbound.spool import Spool
from zapa_bridge.ops.health import Health
from zapa_bridge.simulator import Simulator, SimulatorConfig
from zapa_bridge.store import keys


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """zapw with ENABLE_WEBHOOK unset: its events are only listed, never posted."""
    with Simulator(SimulatorConfig(connect_delay=None, sessions=("s1",))) as simulator:
        simulator.connect("s1")
        yield simulator


@pytest.fixture
def recovery(sim: Simulator, redis_db: Any, tmp_path: Path) -> Iterator[Any]:
    bridge = BridgeClient(sim.url)
    core = services()

    def make(grace: float = 0.0, too_old: float = 1800.0) -> EventRecovery:
        intake = core.intake_over(core.redis, Spool(tmp_path / "spool.sqlite3"))
        return EventRecovery(core.redis, bridge, intake, core.sessions, grace=grace,
                             too_old=too_old)

    yield make
    bridge.close()


def inbound_text(message_id: str, session: str = "s1") -> str | None:
    entry = services().inbound.get(keys.inbound_id(session, message_id))
    return None if entry is None else entry["message"]["text"]


def test_events_never_posted_are_taken_in_once_and_webhooks_judged_not_posting(
        sim, recovery, redis_db):
    ids = [sim.inject_inbound("s1", text=f"lost {n}")["data"]["messageId"] for n in range(3)]
    report = recovery().poll()
    assert report is not None
    assert (report.listed, dict(report.recovered), report.arrived) == (4, {"s1": 4}, 0)
    assert [inbound_text(i) for i in ids] == ["lost 0", "lost 1", "lost 2"]
    assert recovered_counts(redis_db) == {"s1": 4}  # the session.connected too
    assert DeliveryState.read(redis_db).not_posting
    again = recovery().poll()
    assert again is not None and (dict(again.recovered), again.arrived) == ({}, 0)
    assert recovered_counts(redis_db) == {"s1": 4}


def test_a_webhook_arriving_after_recovery_is_a_free_duplicate(sim, recovery, post_event):
    posted = sim.inject_inbound("s1", text="late")
    recovery().poll()
    assert post_event(posted) == "duplicate"


def test_events_that_came_as_webhooks_are_left_alone_and_clear_not_posting(
        sim, recovery, redis_db, post_event):
    sim.inject_inbound("s1", text="missed")
    recovery().poll()
    assert DeliveryState.read(redis_db).not_posting
    delivered = sim.inject_inbound("s1", text="delivered")
    assert post_event(delivered) == "accepted"
    report = recovery().poll()
    assert report is not None and (dict(report.recovered), report.arrived) == ({}, 1)
    assert not DeliveryState.read(redis_db).not_posting
    assert recovered_counts(redis_db) == {"s1": 2}


def test_a_session_event_recorded_from_its_webhook_counts_as_arrived(sim, recovery, redis_db):
    (stored,) = sim.events()
    # The webhook's timestamp lies a few ms before the one zapw listed.
    services().sessions.apply_event("s1", "connected", at=stored["timestamp"] - 3)
    report = recovery().poll()
    assert report is not None and (dict(report.recovered), report.arrived) == ({}, 1)
    assert recovered_counts(redis_db) == {}


def test_an_event_waits_out_the_grace_before_it_is_offered(sim, recovery, redis_db):
    sim.inject_inbound("s1", text="in grace")
    waiting = recovery(grace=60.0).poll()
    assert waiting is not None and (waiting.waiting, dict(waiting.recovered)) == (2, {})
    assert redis_db.hlen(keys.EVENTS_SIGHTINGS) == 2
    assert recovered_counts(redis_db) == {} and not DeliveryState.read(redis_db).not_posting


def test_an_event_first_seen_after_its_dedupe_window_is_left_alone(sim, recovery, redis_db):
    time.sleep(0.01)
    report = recovery(too_old=0.001).poll()
    assert report is not None and dict(report.recovered) == {}
    assert list(redis_db.hgetall(keys.EVENTS_SIGHTINGS).values()) == ["done"]


def test_a_second_poller_does_nothing_while_the_lock_is_held(sim, recovery, redis_db):
    sim.inject_inbound("s1", text="once")
    lock = redis_db.lock(keys.EVENTS_POLL_LOCK, timeout=10)
    assert lock.acquire(blocking=False)
    assert recovery().poll() is None
    lock.release()
    assert recovery().poll() is not None


def test_health_says_zapw_is_not_posting_webhooks_until_one_arrives(sim, recovery, redis_db,
                                                                      post_event):
    checker = health_checker()
    assert checker.check_webhooks().status == Health.HEALTHY
    sim.inject_inbound("s1", text="missed")
    recovery().poll()
    component = checker.check_webhooks()
    assert (component.status, component.message) == (Health.DEGRADED, NOT_POSTING)
    assert component.metadata["recovered"] == 2
    assert post_event(sim.inject_inbound("s1", text="delivered")) == "accepted"
    recovery().poll()
    assert checker.check_webhooks().status == Health.HEALTHY


def test_the_newest_event_offered_decides_whether_webhooks_are_posting(sim, recovery, redis_db,
                                                                        post_event):
    assert post_event(sim.inject_inbound("s1", text="delivered")) == "accepted"
    sim.inject_inbound("s1", text="then missed")
    report = recovery().poll()
    assert report is not None and (report.arrived, dict(report.recovered)) == (1, {"s1": 2})
    assert DeliveryState.read(redis_db).not_posting
