"""Asks for a reconciliation now, debounced across every worker: a send that finds its
session missing on the bridge should not wait for beat's next tick."""

from __future__ import annotations

import logging

import redis

from zapa_bridge.errors import QueueUnavailable
from zapa_bridge.logs import line
from zapa_bridge.store import keys
from zapa_bridge.store.publisher import Publisher

log = logging.getLogger("zapa.reconcile")

# At most one asked-for reconciliation waits at a time; this bounds how long an ask is
# remembered, in seconds, should the queued one be lost.
REQUEST_GAP = 3.0


class ReconcileRequests:
    """Debounces the asks for an immediate reconciliation, across every worker."""

    def __init__(self, client: redis.Redis, publisher: Publisher, *,
                 gap: float = REQUEST_GAP) -> None:
        self.redis = client
        self.publisher = publisher
        self.gap = gap

    def ask(self) -> None:
        """Ask for a reconciliation now rather than at beat's next tick (a session went
        missing on the bridge); several asks within `gap` seconds queue one. Never fails:
        beat's tick is the fallback."""
        try:
            if self.claim():
                self.publisher.publish(self.publisher.prepare_reconcile())
                log.info(line("reconcile.requested", reason="session missing on bridge"))
        except (redis.RedisError, QueueUnavailable) as exc:
            log.warning(line("reconcile.not_requested", reason=type(exc).__name__))

    def claim(self) -> bool:
        """True when no reconciliation is asked for and not started yet (nor in the last
        `gap` seconds, should the asked one be lost): that caller queues one."""
        return bool(self.redis.set(keys.RECONCILE_REQUESTED, 1, nx=True, px=int(self.gap * 1000)))

    def started(self) -> None:
        """A reconciliation begins: what is asked from now on needs another one."""
        self.redis.delete(keys.RECONCILE_REQUESTED)
