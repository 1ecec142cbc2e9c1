"""Bridge reconciliation: bring our view of the sessions in line with the bridge's.

Run periodically by Celery beat as the fallback for missed session webhooks: it refreshes
the session registry from `GET /sessions`, releases the held messages of sessions that are
connected, expires messages held past their validity (even when the bridge is down), and
creates on the bridge every session of ZAPA_SESSIONS it lacks, and re-queues messages the
broker lost (see recovery.py).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from zapa_bridge.bridge_client import BridgeClient
from zapa_bridge.errors import BridgeError, SessionAlreadyExists
from zapa_bridge.logs import line
from zapa_bridge.outbox import Outbox
from zapa_bridge.recovery import LostMessageSweeper
from zapa_bridge.sessions import SessionRegistry

log = logging.getLogger("zapa.reconcile")


@dataclass(slots=True)
class ReconcileReport:
    bridge_reachable: bool = False
    sessions: int = 0
    connected: int = 0
    released: dict[str, int] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    expired: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"bridge_reachable": self.bridge_reachable, "sessions": self.sessions,
                "connected": self.connected, "released": self.released,
                "created": self.created, "recovered": self.recovered,
                "expired": self.expired, "error": self.error}


def reconcile(client: BridgeClient, registry: SessionRegistry, outbox: Outbox,
              *, hold_validity: float, managed_sessions: list[str] | None = None,
              sweeper: LostMessageSweeper | None = None) -> ReconcileReport:
    report = ReconcileReport()
    report.expired = outbox.expire_held(hold_validity)
    if sweeper is not None:
        report.recovered = sweeper.sweep()
    try:
        sessions = client.list_sessions()
        missing = [name for name in managed_sessions or [] if name not in
                   {info.id for info in sessions}]
        for name in missing:
            # Created so its QR appears for scanning (admin page, GET /sessions/{id}).
            with contextlib.suppress(SessionAlreadyExists):
                client.create_session(name)
                report.created.append(name)
        if missing:
            sessions = client.list_sessions()
    except BridgeError as exc:
        report.error = f"{type(exc).__name__}: {exc.message}"
        log.warning(line("reconcile.bridge_unreachable", error=report.error))
        return report
    report.bridge_reachable = True
    registry.replace_from_bridge(sessions)
    report.sessions = len(sessions)
    connected = {info.id for info in sessions if info.connected}
    report.connected = len(connected)
    for session in outbox.held.sessions():
        if session in connected:
            report.released[session] = outbox.release_held(session)
    return report
