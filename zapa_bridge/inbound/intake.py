"""Webhook intake: deduplicate and queue an event in one Redis call; spool it locally when
Redis is down.

Once `accept` returns, the event will be handled exactly once in the normal case (and at
least once across a crash); `IntakeUnavailable` means it was stored nowhere, so the web edge
answers 503 and zapw tries again.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

import redis

from zapa_bridge.errors import IntakeUnavailable, InvalidEvent
from zapa_bridge.inbound.events import WebhookEvent, parse_event
from zapa_bridge.inbound.spool import Spool
from zapa_bridge.logs import line
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.durability import NO_WAIT, ReplicaWait
from zapa_bridge.store.publisher import PreparedMessage, Publisher
from zapa_bridge.store.replies import text, text_hash
from zapa_bridge.tracing import span

log = logging.getLogger("zapa.intake")

QUEUED_MARK = ":queued"

_ACCEPT = scripts.read(__package__, "intake.accept.lua")


class Intake:
    def __init__(self, client: redis.Redis, publisher: Publisher, spool: Spool, *,
                 dedupe_ttl: int, durability: ReplicaWait = NO_WAIT) -> None:
        self.redis = client
        self.publisher = publisher
        self.spool = spool
        self.dedupe_ttl = dedupe_ttl
        # A queued event is an answered webhook: it waits for the replicas asked for (short
        # of them, the event is spooled).
        self._accept = durability.wrap(client.register_script(_ACCEPT))

    def accept(self, event: WebhookEvent) -> str:
        """Returns `accepted`, `duplicate`, `ignored` (unknown type) or `spooled`. The
        queued `handle_event` task continues the trace of this call's span."""
        with span("zapa.intake", attributes={"zapa.event_type": event.stats_type,
                                             "zapa.session": event.session}) as current:
            outcome = self._accept_event(event)
            current.set_attribute("zapa.outcome", outcome)
            return outcome

    def _accept_event(self, event: WebhookEvent) -> str:
        if not event.known:
            self._count(event.stats_type, "ignored")
            log.warning(line("webhook.ignored", event_type=event.event_type[:60],
                             session=event.session))
            return "ignored"
        token = uuid.uuid4().hex
        try:
            return self._queue(event, token)
        except redis.RedisError:
            return self._spool(event, token)

    def drain_spool(self) -> int:
        """Queue what the spool holds; stops quietly at the first failure (Redis still
        down). Returns how many events left the spool."""
        try:
            drained = self.spool.drain(self._replay)
        except redis.RedisError:
            return 0
        if drained:
            log.info(line("spool.drained", events=drained))
        return drained

    def _replay(self, envelope: dict[str, Any], deduplicated: bool, token: str) -> None:
        try:
            event = parse_event(envelope)
        except InvalidEvent:  # pragma: no cover - only valid events are spooled
            return
        if deduplicated and not token:
            # Spooled by a version that deduplicated first and kept no token: it was the
            # first sighting, so it is queued as it is.
            message = self._prepare(event)
            self.redis.lpush(message.queue, message.payload)
            return
        self._queue(event, token or uuid.uuid4().hex)

    def _queue(self, event: WebhookEvent, token: str) -> str:
        """`accepted` or `duplicate`, in one round trip (see `_ACCEPT`)."""
        message = self._prepare(event)
        return text(self._accept(keys=[keys.seen(event.dedupe_key()), message.queue,
                                       keys.WEBHOOK_STATS],
                                 args=[token, self.dedupe_ttl, message.payload,
                                       event.stats_type, QUEUED_MARK]))

    def _prepare(self, event: WebhookEvent) -> PreparedMessage:
        """The `handle_event` message of `event`, pushed in the call that deduplicates it."""
        return self.publisher.prepare_event(
            event.envelope, kwargsrepr=repr({"event": event.event_type, "session": event.session}))

    def _spool(self, event: WebhookEvent, token: str) -> str:
        try:
            self.spool.put(event.envelope, deduplicated=False, token=token)
        except Exception as exc:
            raise IntakeUnavailable(f"webhook could not be stored: {type(exc).__name__}") from exc
        log.warning(line("webhook.spooled", event_type=event.event_type,
                         session=event.session))
        return "spooled"

    def _count(self, stats_type: str, outcome: str) -> None:
        # Counting must never fail an intake.
        with contextlib.suppress(redis.RedisError):
            self.redis.hincrby(keys.WEBHOOK_STATS, f"{stats_type}:{outcome}", 1)

    def stats(self) -> dict[str, int]:
        counts = text_hash(self.redis.hgetall(keys.WEBHOOK_STATS))
        return {key: int(value) for key, value in counts.items()}
