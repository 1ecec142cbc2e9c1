"""The simulator's settings: zapw's environment (webhook URL, API key, mock phone) plus ours.

One typed object, built once; the fields in `RUNTIME_FIELDS` may be changed while running
(through `PUT /_sim/config` or `Simulator.configure`), each change validated by name.

`flavour` says which zapw is simulated. "real" (the default) is zapw with a phone behind
it: every receipt of a send (server ack, delivered, read) arrives as `message.sent` without
a `status`, because zapw reads the wrong Baileys field, and a session that was connected
once keeps its WhatsApp credentials across a restart. "mock" is zapw's USE_MOCK_WHATSAPP:
no receipt at all after a send, and no credentials, so a restart forgets every session.
A non-empty `auto_status` simulates a fixed zapw instead, whatever the flavour: `message.sent`
with status 2, then `message.delivered` (3) and/or `message.read` (4) as listed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

AUTO_STATUSES = ("delivered", "read")
FLAVOURS = ("real", "mock")
Flavour = Literal["real", "mock"]
RESTART_DOWNTIME = 1.0  # s a restart refuses connections while it restores, by default


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """What zapw would read from its environment, and how the simulated WhatsApp behaves."""

    host: str = "127.0.0.1"
    port: int = 0
    flavour: Flavour = "real"
    # zapw's WEBHOOK_URL with ENABLE_WEBHOOK=true; None posts nothing, as ENABLE_WEBHOOK unset.
    webhook_url: str | None = None
    # ENABLE_WEBHOOK: False posts nothing even with a URL (the usual setup mistake); events
    # are still kept for GET /events either way.
    webhooks_enabled: bool = True
    api_key: str | None = None
    # Seconds from creation (QR shown) to "connected"; None: only `connect()` scans the QR.
    connect_delay: float | None = 2.0
    phone: str = "1234567890"
    phones: dict[str, str] = field(default_factory=dict)  # per session id, overrides `phone`
    name: str = "Test User"
    device: int = 1  # the device suffix of our own JID in message.received `to`
    qr_ttl: float = 60.0
    webhook_attempts: int = 3  # WEBHOOK_RETRY_ATTEMPTS
    webhook_retry_delay: float = 1.0  # WEBHOOK_RETRY_DELAY, multiplied by the attempt number
    webhook_timeout: float = 10.0
    # A fixed zapw's receipts after each accepted send; empty: the flavour's own receipts.
    auto_status: tuple[str, ...] = ()
    # When the phone acknowledges delivery and reading, in s after the send.
    delivered_delay: float = 0.5
    read_delay: float = 1.0
    # After a restart, s from listening again to `connecting`, and from there to `connected`.
    restore_delay: float = 0.5
    sessions: tuple[str, ...] = ()  # created at start, connecting after `connect_delay`

    def phone_for(self, session_id: Any) -> str:
        return self.phones.get(session_id, self.phone) if isinstance(session_id, str) \
            else self.phone

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in values.items()}


RUNTIME_FIELDS = frozenset({
    "flavour", "webhook_url", "webhooks_enabled", "api_key", "connect_delay", "phone",
    "phones", "name", "device",
    "qr_ttl", "webhook_attempts", "webhook_retry_delay", "webhook_timeout", "auto_status",
    "delivered_delay", "read_delay", "restore_delay",
})


def with_changes(config: SimulatorConfig, changes: dict[str, Any]) -> SimulatorConfig:
    """A copy of `config` with `changes` applied; ValueError names the first bad field."""
    checked: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in RUNTIME_FIELDS:
            raise ValueError(f"{key}: not a setting that can change at run time")
        checked[key] = _check(key, value)
    return dataclasses.replace(config, **checked)


def _check(key: str, value: Any) -> Any:
    if key == "flavour":
        if value not in FLAVOURS:
            raise ValueError(f"flavour: must be one of {', '.join(FLAVOURS)}")
        return value
    if key in ("webhook_url", "api_key"):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key}: must be a string or null")
        return value or None
    if key == "webhooks_enabled":
        if not isinstance(value, bool):
            raise ValueError("webhooks_enabled: must be true or false")
        return value
    if key == "connect_delay":
        return None if value is None else _seconds(key, value)
    if key in ("phone", "name"):
        if not isinstance(value, str):
            raise ValueError(f"{key}: must be a string")
        return value
    if key == "phones":
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError("phones: must map session ids to phone numbers")
        return dict(value)
    if key in ("device", "webhook_attempts"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key}: must be a whole number >= 1")
        return value
    if key == "auto_status":
        statuses = tuple(value.split(",")) if isinstance(value, str) else tuple(value or ())
        statuses = tuple(s.strip() for s in statuses if s.strip())
        bad = [s for s in statuses if s not in AUTO_STATUSES]
        if bad:
            raise ValueError(f"auto_status: {bad[0]!r} is not one of {', '.join(AUTO_STATUSES)}")
        return statuses
    return _seconds(key, value)


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key}: must be a number of seconds >= 0")
    return float(value)
