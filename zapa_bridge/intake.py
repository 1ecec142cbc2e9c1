"""Webhook intake: deduplicate, then queue the event; spool it locally when Redis is down.

Once `accept` returns, the event will be handled exactly once in the normal case (and at
least once across a crash); `IntakeUnavailable` means it was stored nowhere, so the web edge
answers 503 and zapw tries again.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import redis

from zapa_bridge.errors import IntakeUnavailable, InvalidEvent, QueueUnavailable
from zapa_bridge.logs import line
from zapa_bridge.spool import Spool
from zapa_bridge.status_store import PREFIX
from zapa_bridge.webhook_events import WebhookEvent, parse_event

log = logging.getLogger("zapa.intake")

STATS_KEY = f"{PREFIX}stats:webhooks"

PublishEvent = Callable[[WebhookEvent], None]
"""Queues one event for the `handle_event` task; raises `QueueUnavailable`."""


class Intake:
    def __init__(self, client: redis.Redis, publish: PublishEvent, spool: Spool, *,
                 dedupe_ttl: int) -> None:
        self.redis = client
        self.publish = publish
        self.spool = spool
        self.dedupe_ttl = dedupe_ttl

    def accept(self, event: WebhookEvent) -> str:
        """Returns `accepted`, `duplicate`, `ignored` (unknown type) or `spooled`."""
        if not event.known:
            self._count(event.event_type, "ignored")
            log.warning(line("webhook.ignored", event_type=event.event_type[:60],
                             session=event.session))
            return "ignored"
        token = uuid.uuid4().hex
        try:
            first = self._first_sighting(event, token)
        except redis.RedisError:
            return self._spool(event, deduplicated=False, token=token)
        if not first:
            self._count(event.event_type, "duplicate")
            return "duplicate"
        try:
            self.publish(event)
        except QueueUnavailable:
            try:
                return self._spool(event, deduplicated=True, token=token)
            except IntakeUnavailable:
                # Stored nowhere: forget we saw it, so zapw's retry is not a "duplicate".
                with contextlib.suppress(redis.RedisError):
                    self.redis.delete(self._seen_key(event))
                raise
        self._count(event.event_type, "accepted")
        return "accepted"

    def drain_spool(self) -> int:
        """Queue what the spool holds; stops quietly at the first failure (Redis still
        down). Returns how many events left the spool."""
        try:
            drained = self.spool.drain(self._replay)
        except (redis.RedisError, QueueUnavailable):
            return 0
        if drained:
            log.info(line("spool.drained", events=drained))
        return drained

    def _replay(self, envelope: dict[str, Any], deduplicated: bool, token: str) -> None:
        try:
            event = parse_event(envelope)
        except InvalidEvent:  # pragma: no cover - only valid events are spooled
            return
        if not deduplicated and not self._first_sighting(event, token or uuid.uuid4().hex):
            return
        self.publish(event)

    def _first_sighting(self, event: WebhookEvent, token: str) -> bool:
        """Whether this intake is the first to see the event. The key holds the token of
        the intake that set it: a write of ours whose answer was lost (the client retried
        and found the key) is still ours."""
        key = self._seen_key(event)
        if self.redis.set(key, token, nx=True, ex=self.dedupe_ttl):
            return True
        return self.redis.get(key) == token

    @staticmethod
    def _seen_key(event: WebhookEvent) -> str:
        return f"{PREFIX}seen:{event.dedupe_key()}"

    def _spool(self, event: WebhookEvent, *, deduplicated: bool, token: str) -> str:
        try:
            self.spool.put(event.envelope, deduplicated=deduplicated, token=token)
        except Exception as exc:
            raise IntakeUnavailable(f"webhook could not be stored: {type(exc).__name__}") from exc
        log.warning(line("webhook.spooled", event_type=event.event_type,
                         session=event.session))
        return "spooled"

    def _count(self, event_type: str, outcome: str) -> None:
        # Counting must never fail an intake.
        with contextlib.suppress(redis.RedisError):
            self.redis.hincrby(STATS_KEY, f"{event_type[:60]}:{outcome}", 1)

    def stats(self) -> dict[str, int]:
        return {key: int(value) for key, value in self.redis.hgetall(STATS_KEY).items()}
