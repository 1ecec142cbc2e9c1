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
from collections.abc import Callable
from typing import Any

import redis

from zapa_bridge.errors import IntakeUnavailable, InvalidEvent
from zapa_bridge.inbound.events import WebhookEvent, parse_event
from zapa_bridge.inbound.spool import Spool
from zapa_bridge.logs import line
from zapa_bridge.outbound.status_store import PREFIX
from zapa_bridge.store.prepared import PreparedMessage

log = logging.getLogger("zapa.intake")

STATS_KEY = f"{PREFIX}stats:webhooks"
QUEUED_MARK = ":queued"

PrepareEvent = Callable[[WebhookEvent], PreparedMessage]
"""The `handle_event` task message for one event, ready to be pushed on its queue."""

# Dedupe and queue as one atomic step. KEYS: the seen key, the queue, the stats hash.
# ARGV: this intake's token, the dedupe TTL, the message, the event type (stats field).
# The seen key holds the token of the intake that set it, then the token's queued mark once
# its message is on the queue: a call repeated by the client after its answer was lost finds
# its own mark and neither pushes again nor answers duplicate; a spooled event replayed with
# its token does the same.
_ACCEPT = """
local seen = redis.call('GET', KEYS[1])
local queued = ARGV[1] .. '""" + QUEUED_MARK + """'
if seen == queued then
    return 'accepted'
end
if seen and seen ~= ARGV[1] then
    redis.call('HINCRBY', KEYS[3], ARGV[4] .. ':duplicate', 1)
    return 'duplicate'
end
-- Push before marking: a refused push (an ACL, out of memory) then leaves no key claiming
-- an event that was not queued (Redis does not roll a script back).
redis.call('LPUSH', KEYS[2], ARGV[3])
if seen then
    redis.call('SET', KEYS[1], queued, 'KEEPTTL')
else
    redis.call('SET', KEYS[1], queued, 'EX', ARGV[2])
end
redis.call('HINCRBY', KEYS[3], ARGV[4] .. ':accepted', 1)
return 'accepted'
"""


class Intake:
    def __init__(self, client: redis.Redis, prepare: PrepareEvent, spool: Spool, *,
                 dedupe_ttl: int) -> None:
        self.redis = client
        self.prepare = prepare
        self.spool = spool
        self.dedupe_ttl = dedupe_ttl
        self._accept = client.register_script(_ACCEPT)

    def accept(self, event: WebhookEvent) -> str:
        """Returns `accepted`, `duplicate`, `ignored` (unknown type) or `spooled`."""
        if not event.known:
            self._count(event.event_type, "ignored")
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
            message = self.prepare(event)
            self.redis.lpush(message.queue, message.payload)
            return
        self._queue(event, token or uuid.uuid4().hex)

    def _queue(self, event: WebhookEvent, token: str) -> str:
        """`accepted` or `duplicate`, in one round trip (see `_ACCEPT`)."""
        message = self.prepare(event)
        return self._accept(keys=[f"{PREFIX}seen:{event.dedupe_key()}", message.queue,
                                  STATS_KEY],
                            args=[token, self.dedupe_ttl, message.payload,
                                  event.event_type[:60]])

    def _spool(self, event: WebhookEvent, token: str) -> str:
        try:
            self.spool.put(event.envelope, deduplicated=False, token=token)
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
