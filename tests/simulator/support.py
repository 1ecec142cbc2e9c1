"""Shared pieces of the simulator tests (this module holds no tests).

`Receiver` is a small webhook endpoint over real HTTP that records every POST and can be
told to fail or stall; `fast_config` makes a simulator whose timers and retries take
milliseconds, so the whole suite stays quick; `holds` proves that something does not happen.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from werkzeug.wrappers import Request, Response

from tests.helpers import ServedApp, wait_until
from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.simulator import Simulator, SimulatorConfig

TO = "5511988887777"


def fast_config(**overrides: Any) -> SimulatorConfig:
    """Settings with short delays: connect in 50 ms, webhook retries 50 ms apart, receipts
    and a restart's reconnection within 100 ms."""
    values: dict[str, Any] = {"connect_delay": 0.05, "webhook_retry_delay": 0.05,
                              "webhook_timeout": 2.0, "delivered_delay": 0.05,
                              "read_delay": 0.1, "restore_delay": 0.05}
    values.update(overrides)
    return SimulatorConfig(**values)


@dataclass(frozen=True)
class Received:
    """One POST that reached the receiver, and the status it was answered with."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_type(self) -> str:
        return self.json["eventType"]


class Receiver(ServedApp):
    """A webhook receiver in a thread; answers 200 unless told otherwise."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._answers: deque[tuple[int, float]] = deque()
        self.default_status = 200
        self.finished = 0  # answers fully written, to wait out slow ones
        super().__init__()
        self.url = f"{self.base_url}/hooks/zapw?token=t"

    def answer_next(self, count: int, status: int = 500, delay: float = 0.0) -> None:
        """Answer the next `count` posts with `status`, each after `delay` seconds."""
        with self._lock:
            self._answers.extend([(status, delay)] * count)

    def received(self, event_type: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if event_type in (None, r.event_type)]

    def wait_for(self, event_type: str, count: int = 1, timeout: float = 5.0) -> list[Received]:
        return wait_until(lambda: (got := self.received(event_type)) and len(got) >= count
                          and got, timeout=timeout, what=f"{count} x {event_type}")

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            status, delay = self._answers.popleft() if self._answers \
                else (self.default_status, 0.0)
            self._received.append(Received(request.full_path, dict(request.headers),
                                           request.get_data(), status, time.time()))
        if delay:
            time.sleep(delay)
        response = Response("{}", status=status, content_type="application/json")
        with self._lock:
            self.finished += 1
        return response(environ, start_response)


def connected(sim: Simulator, session_id: str = "s1") -> dict[str, Any]:
    """A session that is connected already (the QR scanned at once)."""
    return sim.add_session(session_id, connected=True)


def post_json(url: str, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(url, json=body, timeout=5, **kwargs)


class Simulators:
    """Starts simulators (and our clients of them) for one test; all stopped at its end."""

    def __init__(self) -> None:
        self.started: list[Simulator] = []
        self.clients: list[BridgeClient] = []

    def start(self, **overrides: Any) -> Simulator:
        sim = Simulator(fast_config(**overrides)).start()
        self.started.append(sim)
        return sim

    def client(self, sim: Simulator, **kwargs: Any) -> BridgeClient:
        kwargs.setdefault("timeout", 5)
        client = BridgeClient(sim.url, **kwargs)
        self.clients.append(client)
        return client

    def stop_all(self) -> None:
        for client in self.clients:
            client.close()
        for sim in self.started:
            sim.stop()


def holds(check: Callable[[], Any], seconds: float, what: str = "condition") -> None:
    """Fail as soon as `check` turns falsy within `seconds`: proves that something does not
    happen, for as long as it would take to happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), f"{what} stopped holding"
        time.sleep(0.01)
    assert check(), f"{what} stopped holding"
