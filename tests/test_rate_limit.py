"""The per-session rate limit: a sliding window shared by all workers, whose waits sit in
Redis (not in worker slots, not in Celery countdowns) and cost no attempt."""

from __future__ import annotations

import pytest

from tests.helpers import recipient, wait_until
from workers.celery_app import app
from workers.tasks import send_message, services
from zapa_bridge.config import Settings, load_settings
from zapa_bridge.errors import ConfigError
from zapa_bridge.ops.metrics import RATE_LIMITED
from zapa_bridge.outbound.rate_limit import SessionRateLimiter
from zapa_bridge.outbound.rate_spec import RateLimit, parse_rate, parse_session_rates
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.queues import SEND_QUEUE_BY_PRIORITY
from zapa_bridge.store import keys

S = MessageStatus
UNACKED = app.conf.broker_transport_options["unacked_key"]


@pytest.mark.parametrize(("text", "expected"), [
    ("5/5s", RateLimit(5, 5.0)), ("5/1", RateLimit(5, 1.0)), (" 10 / 0.5s ", RateLimit(10, 0.5)),
    ("off", None), ("OFF", None),
])
def test_rates_parse(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["5", "fast", "0/1s", "5/0s", "-1/1s", "5/s"])
def test_bad_rates_are_refused_naming_the_setting(text):
    with pytest.raises(ConfigError) as error:
        load_settings(ZAPA_RATE_LIMIT=text)
    assert "ZAPA_RATE_LIMIT" in str(error.value)


def test_session_overrides_parse_and_fall_back_to_the_default():
    assert parse_session_rates("A=5/1s, B=off") == {"A": RateLimit(5, 1.0), "B": None}
    settings = load_settings(ZAPA_RATE_LIMIT="2/1s", ZAPA_SESSION_RATE_LIMITS="A=5/1s,B=off")
    assert settings.rate_limit_for("A") == RateLimit(5, 1.0)
    assert settings.rate_limit_for("B") is None
    assert settings.rate_limit_for("C") == RateLimit(2, 1.0)
    with pytest.raises(ConfigError, match="ZAPA_SESSION_RATE_LIMITS"):
        load_settings(ZAPA_SESSION_RATE_LIMITS="A5/1s")


def test_the_default_is_zapws_advice():
    assert Settings.model_fields["rate_limit"].default == "5/5s"
    assert parse_rate(Settings.model_fields["rate_limit"].default) == RateLimit(5, 5.0)


def test_a_full_window_answers_how_long_until_a_slot_frees(redis_db):
    limiter = SessionRateLimiter(redis_db, RateLimit(3, 10.0), {"free": None})
    assert [limiter.acquire("s1", f"m{n}") for n in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("s1", "m3")
    assert 9.0 < wait <= 10.0
    assert limiter.acquire("s2", "x") == 0.0  # each session has its own window
    assert limiter.acquire("free", "x") == 0.0  # `off`
    limiter.give_back("s1", "m0")
    assert limiter.acquire("s1", "m3") == 0.0


def test_a_settled_slot_counts_from_when_the_bridge_answered(redis_db):
    limiter = SessionRateLimiter(redis_db, RateLimit(1, 10.0), {})
    limiter.acquire("s1", "m0")
    taken = redis_db.zscore(limiter.key("s1"), "m0")
    limiter.settle("s1", "m0")
    assert redis_db.zscore(limiter.key("s1"), "m0") > taken


@pytest.mark.slow
def test_rate_limited_sends_wait_in_redis_and_never_exceed_the_window(start_worker, zapw):
    zapw.add_session("s1")
    zapw.add_session("s2")
    start_worker(ZAPA_SESSION_RATE_LIMITS="s1=3/1s")
    limited = [send_message.delay(to=recipient(n), text=f"l{n}", session="s1").id
               for n in range(9)]
    free = [send_message.delay(to=recipient(100 + n), text=f"f{n}", session="s2").id
            for n in range(20)]
    store = services().store

    # The other session is not held up by the limited one's waits.
    wait_until(lambda: all(r.status is S.SENT for r in store.get_many(free)),
               what="unlimited session sent")
    assert sum(r.status is S.SENT for r in store.get_many(limited)) < 9

    # Waiting sends are in Redis's due set: no worker holds them, no queue carries them.
    def waiting_only_in_redis() -> bool:
        queues = sum(redis_db_len(q) for q in SEND_QUEUE_BY_PRIORITY.values())
        return (store.redis.zcard(keys.DUE) > 0 and queues == 0
                and store.redis.hlen(UNACKED) == 0)

    wait_until(waiting_only_in_redis, what="limited sends waiting in the due set")
    records = wait_until(lambda: (rs := store.get_many(limited)) and all(
        r.status is S.SENT for r in rs) and rs, timeout=20, what="limited session sent")
    assert all(r.attempts == 1 for r in records)  # waiting cost no attempt

    times = sorted(send.at for send in zapw.sent_to("s1"))
    assert len(times) == 9
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[3:], strict=False))
    assert int(store.redis.hget(keys.METRICS_COUNTERS, RATE_LIMITED) or 0) >= 6


def redis_db_len(queue: str) -> int:
    return int(services().redis.llen(str(queue)))
