"""The `e2e` fixture: the whole system over real HTTP, with the zapw simulator as the bridge.

gunicorn serves the web app, a real Celery worker sends through the simulator, the suite's
Redis holds the state, and the simulator posts its webhooks to the web process exactly as
zapw would (with zapw's retry policy, its delays shortened), receipts as the real zapw posts
them (`message.sent` without a status). Sessions A and B are connected before the test
starts, their `session.connected` webhooks already handled.

A test that needs the worker configured differently says so with
`@pytest.mark.worker_env(NAME="value")`, one that needs the web and the worker configured
alike (a setting of the intake, which both run) with `@pytest.mark.stack_env(NAME="value")`,
and one that needs zapw otherwise (no sessions at start, say) with
`@pytest.mark.sim_config(sessions=(), ...)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack
from tests.processes import Started, Web, Worker
from zapa_bridge.devtools.embedded_redis import free_port
from zapa_bridge.simulator import Simulator, SimulatorConfig

WEBHOOK_PATH = "/api/v1/webhooks/whatsapp"
SESSIONS = ("A", "B")
PHONES = {"A": "5511911110001", "B": "5511922220002"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers",
                            "worker_env(**env): extra environment for the e2e worker")
    config.addinivalue_line("markers",
                            "stack_env(**env): extra environment for the e2e web and worker")
    config.addinivalue_line("markers",
                            "sim_config(**fields): SimulatorConfig fields for the e2e zapw")


@pytest.fixture
def start_web(tmp_path: Path) -> Iterator[Callable[..., Web]]:
    """As the suite's `start_web`, without the zapw stub: the simulator plays zapw here."""
    started: Started[Web] = Started()
    yield lambda **env: started.start(Web(tmp_path / f"web{len(started)}.log",
                                          {**os.environ, **env}))
    started.stop_all()


@pytest.fixture
def e2e(request: pytest.FixtureRequest, tmp_path: Path, redis_db: object,
        start_web: Callable[..., Web], start_worker: Callable[..., Worker]) -> Iterator[Stack]:
    marker = request.node.get_closest_marker("stack_env")
    stack_env = dict(marker.kwargs) if marker else {}
    marker = request.node.get_closest_marker("worker_env")
    worker_env = {**stack_env, **(marker.kwargs if marker else {})}
    marker = request.node.get_closest_marker("sim_config")
    sim_fields = dict(marker.kwargs) if marker else {}
    # zapw comes up last, as in a deployment: the web and worker already know its address
    # and the web is ready for the session webhooks zapw posts as soon as it starts.
    zapw_url = f"http://127.0.0.1:{free_port()}"
    web = start_web(ZAPW_URL=zapw_url, ZAPA_SPOOL_PATH=str(tmp_path / "spool.sqlite3"),
                    **stack_env)
    worker = start_worker(ZAPW_URL=zapw_url, **worker_env)
    webhook_url = f"{web.url}{WEBHOOK_PATH}?token={os.environ['ZAPA_WEBHOOK_TOKEN']}"
    sim = Simulator(SimulatorConfig(**{
        "port": int(zapw_url.rsplit(":", 1)[1]), "webhook_url": webhook_url,
        "sessions": SESSIONS, "phones": PHONES, "connect_delay": 0.05,
        "webhook_retry_delay": 0.05, **sim_fields}), seed=7)
    sim.start()
    try:
        stack = Stack(sim, web, worker, webhook_url)
        for session in sim.config.sessions:
            stack.wait_session(session, "connected")
        yield stack
    finally:
        sim.stop()


# A fixed zapw, whose receipts move a message on to `read`. `read` comes later than a
# `delivered` that beat the worker's own `sent` record and waits 1 s to be handled again, so
# `read` is never handled before `delivered`.
FIXED_ZAPW = {"auto_status": ("delivered", "read"), "delivered_delay": 0.2, "read_delay": 1.5}
