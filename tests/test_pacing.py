"""Pacing on the suite's Redis: the recipient limit and the daily limit with its warm-up,
counted once per message by one script, and what the delivery makes of its answers (waits
in the due set, a hold until the next UTC day that no reconnect nor hold validity ends)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from tests.helpers import recipient, task_kwargs
from tests.zapw_stub import ZapwStub
from workers.broker import KombuRedisLayout
from workers.celery_app import app
from workers.tasks import send_message, services
from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.config import load_settings
from zapa_bridge.ops.health import Health, HealthChecker
from zapa_bridge.ops.metrics import DAILY_LIMIT_HELD, PACED
from zapa_bridge.outbound.holds import DAILY_LIMIT
from zapa_bridge.outbound.pacing import DAY, JITTER_MOST, Pacing, PacingRules, jitter, utc_day
from zapa_bridge.outbound.rate_spec import RateLimit
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.services import Services
from zapa_bridge.store import keys

S = MessageStatus
TO = "5511988887777"
# A day in the middle of which the tests' pacing clock stands: noon, UTC.
NOON = (utc_day(time.time()) + 10) * DAY + DAY / 2


def record(client: redis.Redis, message_id: str, session: str = "s1") -> str:
    """A queued record to pace (its key)."""
    services().store.create(message_id, {"to": TO, "text": "hi", "session": session},
                            session=session)
    return keys.message(message_id)


def pacing(client: redis.Redis, **rules: object) -> Pacing:
    return Pacing(client, PacingRules(**rules), test_clock=True)  # type: ignore[arg-type]


def test_a_recipients_window_makes_the_next_message_wait_and_others_go(redis_db):
    paced = pacing(redis_db, recipient=RateLimit(1, 2.0))
    first = paced.take("m1", record(redis_db, "m1"), "s1", TO)
    second = paced.take("m2", record(redis_db, "m2"), "s1", TO)
    other = paced.take("m3", record(redis_db, "m3"), "s1", recipient(3))
    elsewhere = paced.take("m4", record(redis_db, "m4", "s2"), "s2", TO)
    assert (first.go, first.counted, other.go, elsewhere.go) == (True, True, True, True)
    assert not second.go
    assert 1.9 < second.wait <= 2.0 * 1.15 + 0.01  # the window, plus at most 15 % jitter


def test_a_message_is_counted_once_whatever_runs_it_again(redis_db):
    paced = pacing(redis_db, recipient=RateLimit(1, 60.0), daily=10)
    key = record(redis_db, "m1")
    assert paced.take("m1", key, "s1", TO).counted
    again = paced.take("m1", key, "s1", TO)  # a retry, a crash's re-run, a next part
    assert (again.go, again.counted) == (True, False)
    assert redis_db.hget(key, "paced") == "1"
    assert redis_db.get(keys.daily_sent("s1", utc_day(paced.now()))) == "1"


def test_over_the_daily_limit_a_message_waits_for_the_next_utc_day_in_the_order_held(redis_db):
    paced = pacing(redis_db, daily=2)
    paced.move_test_clock(NOON)
    verdicts = [paced.take(f"m{n}", record(redis_db, f"m{n}"), "s1", recipient(n))
                for n in range(4)]
    assert [v.go for v in verdicts] == [True, True, False, False]
    third, fourth = verdicts[2], verdicts[3]
    midnight = NOON + DAY / 2 - (paced.now() - time.time())  # on the real clock
    assert midnight <= third.held_until < fourth.held_until <= midnight + JITTER_MOST + 0.1
    assert (third.sent, third.limit, third.opens) == (
        2, 2, time.strftime("%Y-%m-%d", time.gmtime(NOON + DAY / 2)))
    # A re-check the same day keeps its place; the day's count did not move.
    assert paced.take("m2", keys.message("m2"), "s1", recipient(2)).held_until == \
        third.held_until
    assert paced.at_limit() == {"s1": 2}
    paced.move_test_clock(NOON + DAY)
    assert paced.at_limit() == {}
    assert paced.take("m2", keys.message("m2"), "s1", recipient(2)).counted
    assert redis_db.hget(keys.message("m2"), "day_hold") is None


def test_a_session_whose_limit_was_raised_is_no_longer_at_it_once_a_message_passes(redis_db):
    strict = pacing(redis_db, daily=1)
    for n in range(2):
        strict.take(f"m{n}", record(redis_db, f"m{n}"), "s1", recipient(n))
    assert strict.at_limit() == {"s1": 1}
    raised = pacing(redis_db, daily=5)  # the workers restarted with a higher limit
    assert raised.take("m1", keys.message("m1"), "s1", recipient(1)).counted
    assert raised.at_limit() == {}


def test_a_numbers_warmup_counts_its_days_from_its_first_connect(redis_db):
    core = services()
    first = NOON - 2 * DAY  # two days ago: warm-up day 2
    core.sessions.apply_event("s1", "connected", at=int(first * 1000))
    core.sessions.apply_event("s1", "connected", at=int(NOON * 1000))  # not the first
    assert core.sessions.first_connected("s1") == first
    paced = pacing(redis_db, warmup=(1, 2, 3), daily=4)
    sent = []
    for day in range(4):  # warm-up days 2 and 3, then past the warm-up: the daily limit
        paced.move_test_clock(NOON + day * DAY)
        verdicts = [paced.take(f"d{day}-{n}", record(redis_db, f"d{day}-{n}"), "s1",
                               recipient(n)) for n in range(6)]
        sent.append(sum(verdict.go for verdict in verdicts))
    assert sent == [3, 4, 4, 4]
    # Only the warm-up set: no limit after it.
    assert all(pacing(redis_db, warmup=(1, 2, 3)).take(
        f"free{n}", record(redis_db, f"free{n}"), "s1", recipient(n)).go for n in range(6))


def test_a_session_never_seen_connected_starts_its_warmup_at_its_first_message(redis_db):
    paced = pacing(redis_db, warmup=(1, 5))
    paced.move_test_clock(NOON)
    assert paced.take("m1", record(redis_db, "m1"), "s1", TO).go
    assert not paced.take("m2", record(redis_db, "m2"), "s1", recipient(2)).go
    assert float(redis_db.hget(keys.SESSION_FIRST_CONNECTED, "s1")) == pytest.approx(NOON, abs=1)


def test_the_test_clock_moves_only_under_zapa_env_test(redis_db):
    production = Pacing(redis_db, PacingRules(daily=1), test_clock=False)
    redis_db.set(keys.PACING_TEST_CLOCK, str(10 * DAY))
    assert abs(production.now() - time.time()) < 1
    with pytest.raises(RuntimeError, match="ZAPA_ENV=test"):
        production.move_test_clock(NOON)
    settings = load_settings(ZAPA_ENV="production", ZAPA_SESSION_DAILY_LIMIT="5")
    assert not Pacing.from_settings(redis_db, settings).test_clock


def test_health_names_the_sessions_at_their_daily_limit(redis_db):
    bridge = BridgeClient("http://127.0.0.1:9", timeout=1, connect_timeout=1)
    checker = HealthChecker(load_settings(ZAPA_SESSION_DAILY_LIMIT="1"), redis_db, bridge,
                            KombuRedisLayout(app), [], beat_last_run=time.time)
    assert (checker.check_pacing().status, checker.check_pacing().message) == (
        Health.HEALTHY, "no session at its daily limit")
    paced = pacing(redis_db, daily=1)
    for session in ("s1", "s2"):
        for n in range(2):
            paced.take(f"{session}-{n}", record(redis_db, f"{session}-{n}", session), session,
                       recipient(n))
    verdict = checker.check_pacing()
    assert (verdict.status, verdict.message, verdict.metadata) == (
        Health.DEGRADED, "daily limit reached by s1, s2: their messages wait for the next UTC "
        "day", {"at_limit": {"s1": 1, "s2": 1}})
    off = HealthChecker(load_settings(), redis_db, bridge, KombuRedisLayout(app), [],
                        beat_last_run=time.time)
    assert off.check_pacing().message == "pacing off"
    bridge.close()


def test_jitter_is_a_share_of_the_wait_and_never_above_two_seconds():
    assert all(0 <= jitter(1.0) <= 0.15 for _ in range(200))
    assert all(0 <= jitter(3600.0) <= JITTER_MOST for _ in range(200))
    assert len({round(jitter(10.0), 6) for _ in range(20)}) > 1


# -- what the delivery makes of it (in this process, zapw stubbed over HTTP) ----------------

@pytest.fixture
def paced_core(redis_db: redis.Redis, zapw: ZapwStub) -> Iterator[Services]:
    core = Services(load_settings(ZAPW_URL=zapw.url, ZAPA_RECIPIENT_RATE_LIMIT="1/2s",
                                  ZAPA_SESSION_DAILY_LIMIT="2"), KombuRedisLayout(app))
    zapw.add_session("s1")
    core.pacing.move_test_clock(NOON)
    yield core
    core.bridge.close()


def take_queued(client: redis.Redis) -> tuple[str, dict]:
    raw = json.loads(client.rpop("zapa.send.default"))
    return raw["headers"]["id"], task_kwargs(raw)


def notes(core: Services, message_id: str) -> list[str]:
    found = core.store.get(message_id)
    assert found is not None
    return [entry["note"] for entry in found.history]


def test_a_paced_message_waits_queued_in_the_due_set_with_one_note(redis_db, zapw, paced_core):
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(2)]
    outcome = paced_core.deliverer.deliver(*take_queued(redis_db), go_on_for=30)
    assert outcome.status == "sent"
    second = paced_core.store.get(ids[1])
    assert second is not None and second.status is S.QUEUED
    due = redis_db.zscore(keys.DUE, ids[1])
    assert due is not None and time.time() + 1.5 < due <= time.time() + 2.0 * 1.15 + 0.1
    paced = [note for note in notes(paced_core, ids[1]) if note.startswith("paced")]
    assert len(paced) == 1 and paced[0].startswith("paced: recipient limit, next try in ")
    assert redis_db.hget(keys.METRICS_COUNTERS, PACED) == "1"
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["m0"]


def test_a_message_over_the_daily_limit_is_held_until_its_day_and_then_sent(redis_db, zapw,
                                                                            paced_core):
    core = paced_core
    ids = [send_message.delay(to=recipient(n), text=f"m{n}", session="s1").id for n in range(3)]
    assert [core.deliverer.deliver(*take_queued(redis_db)).status for _ in ids] == [
        "sent", "sent", "held"]
    held = core.store.get(ids[2])
    assert held is not None and (held.status, held.reason) == (S.HELD, DAILY_LIMIT)
    assert notes(core, ids[2])[-1].startswith("daily limit 2 reached, waits for ")
    assert redis_db.hget(keys.METRICS_COUNTERS, DAILY_LIMIT_HELD) == "1"
    due = redis_db.zscore(keys.DUE, ids[2])
    assert due is not None and due > time.time() + DAY / 2 - 60
    # Neither a reconnect's release nor the hold validity ends its wait.
    assert core.outbox.release_held("s1") == 0
    assert core.outbox.expire_held(validity=0) == 0
    assert core.store.get(ids[2]).status is S.HELD
    # Its day comes: the due set publishes it though it says `held`, and it is sent.
    core.pacing.move_test_clock(NOON + DAY / 2 + 1)
    assert core.dispatcher.move_due(now=due + 0.01) == 1
    assert core.deliverer.deliver(*take_queued(redis_db)).status == "sent"
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["m0", "m1", "m2"]
    assert redis_db.get(keys.daily_sent("s1", utc_day(NOON) + 1)) == "1"


def test_a_retried_message_is_not_counted_again(redis_db, zapw, paced_core):
    zapw.fail_next(1, status=500)
    message_id = send_message.delay(to=TO, text="m", session="s1").id
    assert paced_core.deliverer.deliver(*take_queued(redis_db)).status == "queued"
    paced_core.dispatcher.move_due(now=time.time() + 60)
    assert paced_core.deliverer.deliver(*take_queued(redis_db)).status == "sent"
    assert paced_core.store.get(message_id).attempts == 2
    assert redis_db.get(keys.daily_sent("s1", utc_day(NOON))) == "1"
    assert not any(n.startswith("paced") for n in notes(paced_core, message_id))


def test_the_parts_of_a_long_reply_count_as_one_message_and_go_without_a_paced_wait(
        redis_db, zapw, paced_core):
    long_text = "\n\n".join(f"{n} " + "word " * 599 + "end." for n in "ABC")  # 3 parts
    message_id = send_message.delay(to=TO, text=long_text, session="s1").id
    after = send_message.delay(to=TO, text="after", session="s1").id
    paced_core.deliverer.deliver(*take_queued(redis_db), go_on_for=30)

    record = paced_core.store.get(message_id)
    assert record is not None and record.status is S.SENT
    assert [send.body["text"] for send in zapw.sent_to("s1")] == long_text.split("\n\n")
    assert not any(n.startswith("paced") for n in notes(paced_core, message_id))
    assert redis_db.get(keys.daily_sent("s1", utc_day(NOON))) == "1"
    # The next message to that recipient waits out the window, counted from the reply.
    assert paced_core.store.get(after).status is S.QUEUED
    assert redis_db.zscore(keys.DUE, after) is not None
