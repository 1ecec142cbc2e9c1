"""Webhook delivery as zapw does it: one background thread per event, a fixed retry count.

Each attempt has its own timeout; any non-2xx answer, timeout or connection error is
retried after `retry_delay * attempt` seconds (1 s then 2 s by default), and after the last
attempt the event is dropped. Nothing orders events. Every attempt is recorded for tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str | None
    attempts: int
    retry_delay: float
    timeout: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to post one event."""

    event_type: str
    session_id: Any
    attempt: int
    status_code: int | None  # None when no answer came (timeout, refused)
    error: str | None
    outcome: str  # "delivered", "retrying" or "dropped"
    event: dict[str, Any]
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"eventType": self.event_type, "sessionId": self.session_id,
                "attempt": self.attempt, "statusCode": self.status_code, "error": self.error,
                "outcome": self.outcome, "event": self.event, "at": self.at}


class WebhookSender:
    """Posts events to the configured URL; the settings are read anew for every event."""

    def __init__(self, settings: Callable[[], WebhookSettings]) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._closing = threading.Event()
        # Set to end the retries of the events posted so far; replaced by `abandon`.
        self._abandoned = threading.Event()

    def post(self, event: dict[str, Any]) -> None:
        """Start delivering `event` in the background; without a URL nothing is posted."""
        settings = self._settings()
        if not settings.url or self._closing.is_set():
            return
        body = json.dumps(event, separators=(",", ":")).encode()  # fails here, not in a thread
        with self._lock:
            abandoned = self._abandoned
        threading.Thread(target=self._deliver, args=(event, body, settings, abandoned),
                         daemon=True, name=f"webhook-{event['eventType']}").start()

    def deliveries(self, event_type: str | None = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self._deliveries if event_type in (None, d.event_type)]

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()

    def abandon(self) -> None:
        """End the retries of every event posted so far, as their process died; later
        events are delivered as usual."""
        with self._lock:
            self._abandoned.set()
            self._abandoned = threading.Event()

    def close(self) -> None:
        """Stop retrying: pending waits end and no new attempt starts."""
        self._closing.set()
        self.abandon()

    def _deliver(self, event: dict[str, Any], body: bytes, settings: WebhookSettings,
                 abandoned: threading.Event) -> None:
        headers = {"Content-Type": "application/json", "X-Webhook-Event": event["eventType"]}
        for attempt in range(1, settings.attempts + 1):
            status_code, error = _attempt(settings, body, headers)
            delivered = status_code is not None and 200 <= status_code < 300
            last = attempt == settings.attempts
            outcome = "delivered" if delivered else "dropped" if last else "retrying"
            self._record(Delivery(event["eventType"], event["sessionId"], attempt, status_code,
                                  error, outcome, event, time.time()))
            if delivered or last:
                return
            if abandoned.wait(settings.retry_delay * attempt):
                return

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)


def _attempt(settings: WebhookSettings, body: bytes,
             headers: dict[str, str]) -> tuple[int | None, str | None]:
    assert settings.url is not None
    try:
        with requests.post(settings.url, data=body, headers=headers,
                           timeout=settings.timeout) as response:
            ok = 200 <= response.status_code < 300
            return response.status_code, None if ok else f"HTTP {response.status_code}"
    except requests.Timeout:
        return None, "timeout"
    except requests.RequestException as exc:
        return None, type(exc).__name__
