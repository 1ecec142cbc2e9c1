"""A worker and beat ride out their Redis restarting under them, with no one to restart
them: the worker with a send in flight (kombu's restore over the lost connection used to end
it, celery#10205), beat in the middle of its ticks (RedBeat's lock extension used to)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_until
from tests.processes import Beat, Web, Worker
from tests.zapw_stub import ZapwStub
from zapa_bridge.devtools.embedded_redis import EmbeddedRedis
from zapa_bridge.outbound.status_store import MessageStatus, StatusStore
from zapa_bridge.store.connection import redis_client

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": "Bearer " + os.environ["ZAPA_ADMIN_TOKEN"]}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own (AOF on, so a restart keeps the records)."""
    (tmp_path / "redis").mkdir()
    with EmbeddedRedis(persistent=True, directory=str(tmp_path / "redis")) as server:
        yield server


def send(web: Web, text: str) -> str:
    answer = requests.post(f"{web.url}/api/v1/integration/messages", headers=ADMIN, timeout=10,
                           json={"to": "5511988887777", "text": text, "session": "s1"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_a_worker_with_a_send_in_flight_outlives_a_redis_restart_and_goes_on_sending(
        own_redis: EmbeddedRedis, zapw: ZapwStub, start_worker: Callable[..., Worker],
        start_web: Callable[..., Web]) -> None:
    zapw.add_session("s1")
    zapw.latency = 1.5  # the send is still waiting for zapw's answer when Redis goes
    worker = start_worker(REDIS_URL=own_redis.url)
    web = start_web(REDIS_URL=own_redis.url)
    store = StatusStore(redis_client(own_redis.url), retention=3600)
    first = send(web, "before")
    wait_until(lambda: (record := store.get(first)) is not None
               and record.status is MessageStatus.SENDING, what="the first send in flight")
    own_redis.stop()
    own_redis.start()
    zapw.latency = 0.0
    second = send(web, "after")

    wait_until(lambda: (record := store.get(second)) is not None
               and record.status is MessageStatus.SENT, timeout=30, what="the second sent")
    assert worker.process is not None and worker.process.poll() is None, worker.log()[-3000:]
    assert "Unrecoverable error" not in worker.log()
    wait_until(lambda: (record := store.get(first)) is not None
               and record.status is MessageStatus.SENT, timeout=30, what="the first sent")
    assert [s.body["text"] for s in zapw.sent_to("s1")].count("before") == 1


def test_beat_outlives_a_redis_restart_and_goes_on_scheduling(
        own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    beat = Beat(tmp_path / "beat.log", {**os.environ, "REDIS_URL": own_redis.url,
                                        "ZAPA_RECONCILE_INTERVAL": "0.5"})
    beat.start()
    try:
        wait_until(lambda: "Sending due task reconcile-bridge" in beat.log(), what="a tick")
        own_redis.stop()
        wait_until(lambda: "beat.redis_unreachable" in beat.log()
                   or (beat.process is not None and beat.process.poll() is not None),
                   what="a failed tick")
        own_redis.start()
        offset = len(beat.log())
        wait_until(lambda: "Sending due task reconcile-bridge" in beat.log()[offset:],
                   timeout=15, what="a tick after the restart")
        assert beat.process is not None and beat.process.poll() is None, beat.log()[-3000:]
    finally:
        beat.stop()
