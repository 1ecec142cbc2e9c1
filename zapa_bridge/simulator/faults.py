"""Faults the simulator can be told to show: failed, slow or refused sends, stuck QR codes.

Connection refusal lives in `server.py` (it closes the real socket); everything that
changes an answer lives here, read by the bridge core on each request.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults in force; the default is a healthy bridge."""

    failure_rate: float = 0.0  # share of sends (0..1) answered with the failure below
    failure_status: int = 500
    failure_error: str = "Failed to send message"
    latency_ms: float = 0.0  # added before every send answer (the send is done first)
    not_connected: frozenset[str] = frozenset()  # sessions whose sends get "not connected"
    empty_message_id: bool = False  # accepted sends answer messageId "" (zapw allows it)
    # The next `failing_text_times` sends whose text contains `failing_text` get the failure
    # above, whatever `failure_rate` says: one part of a long text, say.
    failing_text: str = ""
    failing_text_times: int = 0
    # POST /sessions blocks this long, then 500 "Timeout waiting for QR code" (real mode).
    qr_timeout: float | None = None
    # GET /sessions/{id} on an expired QR blocks this long while zapw refreshes it.
    qr_refresh_delay: float = 0.0

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["not_connected"] = sorted(self.not_connected)
        return values


class FaultPlan:
    """The current faults and the dice for `failure_rate`, safe to share between threads."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.current = Faults()

    def update(self, **changes: Any) -> Faults:
        """Change some faults, leaving the others; ValueError names the first bad field."""
        checked = {key: _check(key, value) for key, value in changes.items()}
        with self._lock:
            self.current = dataclasses.replace(self.current, **checked)
            return self.current

    def clear(self) -> Faults:
        with self._lock:
            self.current = Faults()
            return self.current

    def send_failure(self, text: str | None = None) -> tuple[int, str] | None:
        """Roll for this send (its `text`, if any): the (status, error text) to answer with,
        or None to go on."""
        with self._lock:
            faults = self.current
            if faults.failing_text_times > 0 and faults.failing_text and text is not None \
                    and faults.failing_text in text:
                self.current = dataclasses.replace(
                    faults, failing_text_times=faults.failing_text_times - 1)
                return faults.failure_status, faults.failure_error
            if faults.failure_rate <= 0.0:
                return None
            if faults.failure_rate >= 1.0 or self._random.random() < faults.failure_rate:
                return faults.failure_status, faults.failure_error
            return None


FIELDS = frozenset(field.name for field in dataclasses.fields(Faults))


def _check(key: str, value: Any) -> Any:
    if key not in FIELDS:
        raise ValueError(f"{key}: not a fault")
    if key == "failure_rate":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError("failure_rate: must be a number from 0 to 1")
        return float(value)
    if key == "failure_status":
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            raise ValueError("failure_status: must be an HTTP status code")
        return value
    if key in ("failure_error", "failing_text"):
        if not isinstance(value, str):
            raise ValueError(f"{key}: must be a string")
        return value
    if key == "failing_text_times":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("failing_text_times: must be a whole number >= 0")
        return value
    if key == "not_connected":
        if isinstance(value, str) or not all(isinstance(item, str) for item in value or ()):
            raise ValueError("not_connected: must be a list of session ids")
        return frozenset(value or ())
    if key == "empty_message_id":
        if not isinstance(value, bool):
            raise ValueError("empty_message_id: must be true or false")
        return value
    if key == "qr_timeout" and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key}: must be a number >= 0")
    return float(value)
