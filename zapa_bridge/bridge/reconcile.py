"""Bridge reconciliation: bring our view of the sessions in line with the bridge's.

Run periodically by Celery beat as the fallback for missed session webhooks, at once when a
send finds its session missing on the bridge, and after health sees the bridge restart: it
refreshes the session registry from `GET /sessions`, releases the held messages of sessions
that are connected, expires messages held past their validity (even when the bridge is
down), re-queues messages the broker lost (see recovery.py), and creates on the bridge
every session it lacks that ZAPA_SESSIONS names or that has messages waiting for it (zapw
forgets sessions on a restart; created again, they connect or show their QR to scan).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.bridge.sessions import SessionRegistry
from zapa_bridge.errors import BridgeError, BridgeUnauthorized, SessionAlreadyExists
from zapa_bridge.logs import line
from zapa_bridge.outbound.outbox import Outbox
from zapa_bridge.outbound.recovery import LostMessageSweeper

log = logging.getLogger("zapa.reconcile")

@dataclass(slots=True)
class ReconcileReport:
    bridge_reachable: bool = False
    unauthorized: bool = False
    sessions: int = 0
    connected: int = 0
    released: dict[str, int] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    expired: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"bridge_reachable": self.bridge_reachable, "unauthorized": self.unauthorized,
                "sessions": self.sessions, "connected": self.connected,
                "released": self.released, "created": self.created, "missing": self.missing,
                "recovered": self.recovered, "expired": self.expired, "error": self.error}


def reconcile(client: BridgeClient, registry: SessionRegistry, outbox: Outbox,
              *, hold_validity: float, managed_sessions: list[str] | None = None,
              sweeper: LostMessageSweeper | None = None) -> ReconcileReport:
    report = ReconcileReport()
    report.expired = outbox.expire_held(hold_validity)
    if sweeper is not None:
        report.recovered = sweeper.sweep()
    waiting = set(outbox.held.sessions())
    try:
        sessions = client.list_sessions()
        on_bridge = {info.id for info in sessions}
        known = {state.id for state in registry.all()}
        wanted = [*(managed_sessions or []),
                  *sorted(session for session in waiting & known
                          if session not in (managed_sessions or []))]
        missing = [name for name in wanted if name not in on_bridge]
        for name in missing:
            # Created so it connects again, or shows its QR for scanning (admin page).
            with contextlib.suppress(SessionAlreadyExists):
                client.create_session(name)
                report.created.append(name)
        if missing:
            sessions = client.list_sessions()
    except BridgeUnauthorized as exc:
        report.bridge_reachable, report.unauthorized = True, True
        report.error = f"unauthorized: {exc.message} (check ZAPW_API_KEY)"
        log.error(line("reconcile.bridge_unauthorized", error=exc.message,
                       hint="check ZAPW_API_KEY"))
        return report
    except BridgeError as exc:
        report.error = f"{type(exc).__name__}: {exc.message}"
        log.warning(line("reconcile.bridge_unreachable", error=report.error))
        return report
    report.bridge_reachable = True
    report.missing = [state.id for state in registry.replace_from_bridge(sessions)]
    report.sessions = len(sessions)
    connected = {info.id for info in sessions if info.connected}
    report.connected = len(connected)
    for session in sorted(waiting & connected):
        report.released[session] = outbox.release_held(session)
    return report
