"""What the simulated zapw holds in memory: sessions, the sends it accepted, its event ring."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from zapa_bridge.simulator.jsvalues import epoch_ms, iso_timestamp

EVENT_RING_SIZE = 10  # zapw's GET /events keeps the last 10


@dataclass(slots=True)
class Session:
    """One zapw session; `id` is whatever JSON value it was created with."""

    id: Any
    status: str
    created_at: float
    phone_number: str | None = None
    name: str | None = None
    connected_at: float | None = None
    qr_code: str | None = None
    qr_expires_at: float | None = None
    # Bumped on every change of connection state, so a stale timer knows to do nothing.
    epoch: int = 0
    # WhatsApp credentials on disk (paired once): what a restart restores the session from.
    has_credentials: bool = False

    def to_json(self) -> dict[str, Any]:
        """zapw's session object: absent fields are left out, never null."""
        body: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.phone_number is not None:
            body["phoneNumber"] = self.phone_number
        if self.name is not None:
            body["name"] = self.name
        body["createdAt"] = iso_timestamp(self.created_at)
        if self.connected_at is not None:
            body["connectedAt"] = iso_timestamp(self.connected_at)
        if self.qr_code is not None:
            body["qrCode"] = self.qr_code
        if self.qr_expires_at is not None:
            body["qrExpiresAt"] = iso_timestamp(self.qr_expires_at)
        return body


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A send zapw accepted (answered 200): what was asked and the id it answered."""

    session_id: str
    body: dict[str, Any]
    message_id: str
    timestamp: int  # epoch ms, as in the answer
    at: float  # time.time() when accepted

    def to_json(self) -> dict[str, Any]:
        return {"sessionId": self.session_id, "body": self.body, "messageId": self.message_id,
                "timestamp": self.timestamp, "at": self.at}


@dataclass
class EventLog:
    """zapw's in-memory list behind GET /events: newest first, ids `evt_1`, `evt_2`, ...

    Every emitted event is stored, posted or not; its timestamp is the time of storing,
    taken apart from the webhook's own, as zapw's `storeWebhookEvent` does.
    """

    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=EVENT_RING_SIZE))
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, event: dict[str, Any]) -> None:
        stored = {"id": f"evt_{next(self.counter)}", "sessionId": event["sessionId"],
                  "eventType": event["eventType"], "timestamp": epoch_ms(),
                  "data": event["data"]}
        with self.lock:
            self.events.appendleft(stored)

    def recent(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def clear(self) -> None:
        with self.lock:
            self.events.clear()
