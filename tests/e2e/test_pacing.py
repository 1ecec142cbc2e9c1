"""Pacing through the whole system: a real worker, the zapw simulator, timed by the
simulator's own clock (when it accepted each send)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.stack import S, Stack, statuses
from tests.helpers import recipient, wait_until
from workers.broker import KombuRedisLayout
from workers.celery_app import app
from workers.tasks import send_message, services
from zapa_bridge.config import load_settings
from zapa_bridge.ops.health import Health, HealthChecker
from zapa_bridge.outbound.holds import DAILY_LIMIT
from zapa_bridge.outbound.pacing import DAY, utc_day

pytestmark = pytest.mark.slow

X, Y = "5511988880001", "5511988880002"


@pytest.mark.worker_env(ZAPA_RECIPIENT_RATE_LIMIT="1/1s")
def test_one_recipient_gets_one_message_a_second_while_others_go_at_full_speed(e2e: Stack):
    """20 messages to X under 1/1s span at least 19 s at zapw; 20 to Y go on beside them,
    paced alike but not behind X; 20 to 20 other people all arrive within seconds. The
    session's own rate limit is off."""
    start = time.time()
    for n in range(20):
        send_message.delay(to=X, text=f"x{n}", session="A")
        send_message.delay(to=Y, text=f"y{n}", session="A")
        send_message.delay(to=recipient(n), text=f"o{n}", session="A")
    sends = e2e.wait_sends(60, "A", timeout=60)
    to = {who: [send for send in sends if send.body["to"] == who] for who in (X, Y)}
    others = [send for send in sends if send.body["to"] not in (X, Y)]
    assert [send.body["text"] for send in to[X]] == [f"x{n}" for n in range(20)]
    assert [send.body["text"] for send in to[Y]] == [f"y{n}" for n in range(20)]
    spans = {who: to[who][-1].at - to[who][0].at for who in (X, Y)}
    assert spans[X] >= 19.0 and spans[Y] >= 19.0, spans
    gaps = [later.at - earlier.at for earlier, later in zip(to[X], to[X][1:], strict=False)]
    assert min(gaps) >= 0.9 and len({round(gap, 2) for gap in gaps}) > 1  # jitter: no beat
    assert max(send.at for send in others) - start < 8.0
    assert max(to[X][-1].at, to[Y][-1].at) - start < 19.0 + 10.0  # side by side
    sixth = e2e.record(wait_until(lambda: services().store.find_by_bridge_id(
        "A", to[X][5].message_id), what="x5's record"))
    assert sixth is not None and [entry["note"].split(",")[0] for entry in sixth.history
                                  if entry["note"].startswith("paced")] == [
        "paced: recipient limit"]


@pytest.mark.worker_env(ZAPA_SESSION_DAILY_LIMIT="5")
def test_a_sixth_message_waits_held_for_the_next_utc_day_and_goes_when_it_comes(e2e: Stack):
    """The workers' pacing clock is set 6 s before a UTC midnight: five messages go, the
    sixth is held (`daily limit`) and health names the session; the day comes and it goes."""
    midnight = (utc_day(time.time()) + 2) * DAY
    services().pacing.move_test_clock(midnight - 6.0)
    real_midnight = midnight - (services().pacing.now() - time.time())
    ids = [send_message.delay(to=recipient(n), text=f"m{n}", session="A").id for n in range(6)]
    e2e.wait_sends(5, "A", timeout=5)
    sixth = wait_until(lambda: (r := e2e.record(ids[5])) is not None and r.status is S.HELD
                       and r, timeout=5, what="the sixth held")
    assert sixth.reason == DAILY_LIMIT
    assert [r.status for r in services().store.get_many(ids[:5])] == [S.SENT] * 5
    checker = HealthChecker(load_settings(ZAPA_SESSION_DAILY_LIMIT="5"), services().redis,
                            services().bridge, KombuRedisLayout(app), [],
                            beat_last_run=time.time)
    component = checker.check_pacing()
    assert (component.status, component.metadata) == (Health.DEGRADED, {"at_limit": {"A": 5}})
    assert "A" in component.message

    sent = e2e.wait_status(ids[5], S.SENT, timeout=15)
    last = e2e.sim.sends("A")[-1]
    assert (len(e2e.sim.sends("A")), last.body["text"]) == (6, "m5")
    assert last.at >= real_midnight
    assert all(send.at < real_midnight for send in e2e.sim.sends("A")[:5])
    assert statuses(sent) == ["queued", "held", "sending", "sent"]
