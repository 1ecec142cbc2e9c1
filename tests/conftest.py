"""Shared fixtures: a Redis of the suite's own, a zapw stub over HTTP, real Celery workers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import Beat, Started, Web, Worker
from tests.zapw_stub import ZapwStub
from zapa_bridge.devtools.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent

# Settings for every process of the suite: short backoffs and a short visibility timeout
# so retries and crash recovery happen within seconds.
TEST_ENV = {
    "ZAPA_ENV": "test",
    "ZAPA_DEFAULT_SESSION": "default",
    "ZAPA_RETRY_BACKOFF": "0.05",
    "ZAPA_RETRY_BACKOFF_MAX": "0.4",
    "ZAPA_MAX_RETRIES": "5",
    "ZAPW_TIMEOUT": "3",
    "ZAPW_CONNECT_TIMEOUT": "1",
    "ZAPA_VISIBILITY_TIMEOUT": "8",
    "ZAPA_UNACKED_RESTORE_INTERVAL": "1",
    "ZAPA_WORKER_CONCURRENCY": "4",
    "ZAPA_LOG_LEVEL": "INFO",
    "ZAPA_WEBHOOK_TOKEN": "test-webhook-token-0123456789abcdef",
    "ZAPA_ADMIN_TOKEN": "test-admin-token-0123456789abcdefgh",
    "ZAPA_INBOUND_TASK": "zapa.echo",
    "ZAPA_LOST_AFTER": "3",
    # Most tests send bursts; the rate limit's own tests turn it on.
    "ZAPA_RATE_LIMIT": "off",
}

_redis: EmbeddedRedis | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _redis
    url = os.environ.get("ZAPA_TEST_REDIS_URL")
    if not url:
        _redis = EmbeddedRedis().start()
        url = _redis.url
    os.environ["REDIS_URL"] = url
    os.environ.update(TEST_ENV)
    os.environ["ZAPA_SPOOL_PATH"] = str(Path(tempfile.mkdtemp(prefix="zapa-spool-")) / "spool.db")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _redis is not None:
        _redis.close()


@pytest.fixture
def redis_db() -> Iterator[object]:
    """The suite's Redis, emptied of our data and queues (kombu's bindings are kept)."""
    from zapa_bridge.store.connection import redis_client

    client = redis_client(os.environ["REDIS_URL"])

    def clean() -> None:
        for pattern in ("zapa:*", "zapa.*", "unacked*"):
            keys = list(client.scan_iter(pattern, count=1000))
            if keys:
                client.delete(*keys)

    clean()
    yield client
    clean()


@pytest.fixture
def zapw() -> Iterator[ZapwStub]:
    stub = ZapwStub()
    server, thread = stub.serve()
    yield stub
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def start_worker(tmp_path: Path, zapw: ZapwStub,
                 redis_db: object) -> Iterator[Callable[..., Worker]]:
    """Start real workers against the stub; all are stopped when the test ends."""
    started: Started[Worker] = Started()

    def start(concurrency: int = 4, **env: str) -> Worker:
        return started.start(Worker(tmp_path / f"worker{len(started)}.log",
                                    {**os.environ, "ZAPW_URL": zapw.url, **env}, concurrency))

    yield start
    started.stop_all()


@pytest.fixture
def start_web(tmp_path: Path, zapw: ZapwStub) -> Iterator[Callable[..., Web]]:
    """Start the web process under gunicorn; stopped when the test ends."""
    started: Started[Web] = Started()
    yield lambda **env: started.start(Web(tmp_path / f"web{len(started)}.log",
                                          {**os.environ, "ZAPW_URL": zapw.url, **env}))
    started.stop_all()


@pytest.fixture
def post_event(redis_db: object) -> Callable[[dict[str, Any]], str]:
    """Posts one zapw event to the webhook with the token; returns the intake's answer
    (`accepted`...)."""
    from zapa_bridge.web import create_app

    client = create_app({"TESTING": True}).test_client()

    def post(body: dict[str, Any]) -> str:
        answer = client.post("/api/v1/webhooks/whatsapp", json=body,
                             query_string={"token": os.environ["ZAPA_WEBHOOK_TOKEN"]},
                             headers={"X-Webhook-Event": body["eventType"]})
        assert answer.status_code == 200, answer.json
        return answer.json["status"]

    return post


@pytest.fixture
def start_beat(tmp_path: Path, redis_db: Any) -> Iterator[Callable[..., Beat]]:
    """Start `celery beat` processes (environment overrides as keywords); all are stopped
    when the test ends."""
    started: Started[Beat] = Started()
    yield lambda **env: started.start(Beat(tmp_path / f"beat{len(started)}.log",
                                           {**os.environ, **env}))
    started.stop_all()
