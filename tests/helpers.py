"""Polling with a deadline, instead of sleeping for a guessed time."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Self, TypeVar

from werkzeug.serving import make_server

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 20.0, interval: float = 0.05,
               what: str = "condition") -> T:
    """Call `check` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class ServedApp:
    """A WSGI app served over real HTTP on a free loopback port, in a thread; a context
    manager. Subclasses give `_app`; `base_url` is where it answers."""

    def __init__(self) -> None:
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


def recipient(n: int) -> str:
    """The n-th of many distinct phone numbers: one conversation each, so messages to them
    are not held back behind each other (messages of one conversation go in order)."""
    return f"5511{n:09d}"


def task_kwargs(message: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a queued Celery message (as stored in Redis, parsed): plain
    JSON as our Publisher writes it, or base64 as kombu does."""
    body = message["body"]
    if message["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body)
    _args, kwargs, _embed = json.loads(body)
    return kwargs
