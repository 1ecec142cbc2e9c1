"""Webhook intake: deduplicate an event and take it in with one Redis call; spool it locally
when Redis is down.

A message is normalised here, recorded and handed to ZAPA_INBOUND_TASK in the call that
deduplicates it; a receipt moves the record it names in that call (zapa_bridge.outbound
.receipts). Only session events, whose release of held messages can be long, are queued for
the `handle_event` task. An event whose call fails for a reason other than a lost Redis (a
key of the wrong type, say) is queued for `handle_event` instead, whose retries end in an
inbound dead letter.

Once `accept` returns, the event will be applied exactly once in the normal case (and at
least once across a crash); `IntakeUnavailable` means it was stored nowhere, so the web edge
answers 503 and zapw tries again.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from opentelemetry import trace

from zapa_bridge.errors import IntakeUnavailable, InvalidEvent
from zapa_bridge.inbound.bursts import LUA_JOIN, Bursts
from zapa_bridge.inbound.events import MESSAGE_RECEIVED, STATUS_EVENTS, WebhookEvent, parse_event
from zapa_bridge.inbound.messages import LUA_RECORD, InboundLog, normalize
from zapa_bridge.inbound.routing import InboundRouter, log_received, receiving
from zapa_bridge.inbound.spool import Spool
from zapa_bridge.logs import line
from zapa_bridge.outbound.receipts import (
    LUA_RECEIVE,
    ReceiptOutcome,
    Receipts,
    applied_from,
    receipt_of,
    trace_receipt,
)
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.durability import NO_WAIT, ReplicaWait
from zapa_bridge.store.publisher import PreparedMessage, Publisher
from zapa_bridge.store.replies import text, text_hash
from zapa_bridge.tracing import span

log = logging.getLogger("zapa.intake")

# What the seen key holds after its token once the event is taken in (`:queued` since the
# first versions, which only queued: a rolling deploy mixes both).
QUEUED_MARK = ":queued"

_DEDUPE = scripts.read(__package__, "intake.dedupe.lua")
_ACCEPT = _DEDUPE + scripts.read(__package__, "intake.accept.lua")
_RECEIVE = _DEDUPE + LUA_RECORD + scripts.read(__package__, "intake.receive.lua")
_BURST = _DEDUPE + LUA_RECORD + LUA_JOIN + scripts.read(__package__, "intake.burst.lua")
_RECEIPT = LUA_RECEIVE + _DEDUPE + scripts.read(__package__, "intake.receipt.lua")


class Intake:
    def __init__(self, client: redis.Redis, publisher: Publisher, spool: Spool, *,
                 dedupe_ttl: int, router: InboundRouter, inbound: InboundLog,
                 receipts: Receipts, durability: ReplicaWait = NO_WAIT,
                 bursts: Bursts | None = None) -> None:
        """`inbound` and `receipts` give the arguments of the calls this makes on `client`
        (the web tier's own, which answers fast or fails fast); with `bursts`, a message
        joins its sender's bursts rather than going to its task at once."""
        self.redis = client
        self.publisher = publisher
        self.spool = spool
        self.dedupe_ttl = dedupe_ttl
        self.router = router
        self.inbound = inbound
        self.receipts = receipts
        self.bursts = bursts
        self.clock: Callable[[], float] = time.time  # the bursts' clock (epoch s)
        # An event taken in is an answered webhook: each call waits for the replicas asked
        # for (short of them, the event is spooled).
        self._accept = durability.wrap(client.register_script(_ACCEPT))
        self._receive = durability.wrap(client.register_script(_RECEIVE))
        self._receipt = durability.wrap(client.register_script(_RECEIPT))
        self._burst = durability.wrap(client.register_script(_BURST))

    def accept(self, event: WebhookEvent, *, spool: bool = True) -> str:
        """Returns `accepted`, `duplicate`, `ignored` (unknown type, or a receipt naming no
        message) or `spooled`. Without `spool`, a lost Redis raises `IntakeUnavailable`
        instead: the caller still holds the event and can offer it again."""
        with span("zapa.intake", attributes={"zapa.event_type": event.stats_type,
                                             "zapa.session": event.session}) as current:
            outcome = self._accept_event(event, spool=spool)
            current.set_attribute("zapa.outcome", outcome)
            return outcome

    def _accept_event(self, event: WebhookEvent, *, spool: bool = True) -> str:
        if not event.known or (event.event_type in STATUS_EVENTS
                               and receipt_of(event.event_type, event.data,
                                              event.session) is None):
            self._count(event.stats_type, "ignored")
            log.warning(line("webhook.ignored", event_type=event.event_type[:60],
                             session=event.session))
            return "ignored"
        token = uuid.uuid4().hex
        try:
            return self._take_in(event, token)
        except redis.RedisError as exc:
            if not spool:
                raise IntakeUnavailable(f"event not taken in: {type(exc).__name__}") from exc
            return self._spool(event, token)

    def drain_spool(self) -> int:
        """Take in what the spool holds; stops quietly at the first failure (Redis still
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
        self._take_in(event, token or uuid.uuid4().hex)

    def _take_in(self, event: WebhookEvent, token: str) -> str:
        """`accepted` or `duplicate`, in one round trip: applied here when the event is a
        message or a receipt, else queued for `handle_event`."""
        try:
            if event.event_type == MESSAGE_RECEIVED:
                return self._receive_message(event, token)
            if event.event_type in STATUS_EVENTS:
                return self._apply_receipt(event, token)
        except (redis.ConnectionError, redis.TimeoutError):
            raise
        except redis.ResponseError as exc:
            # Not a lost Redis: the event's own keys refused it. The task's retries and
            # its inbound dead letter take it from here.
            log.warning(line("intake.deferred", event_type=event.event_type,
                             session=event.session, error=type(exc).__name__))
        return self._queue(event, token)

    def _receive_message(self, event: WebhookEvent, token: str) -> str:
        message = normalize(event)
        with receiving(message) as current:
            hand_on = self.router.route(message)
            record_keys, record_args = self.inbound.call_parts(message, hand_on)
            call_keys = [keys.seen(event.dedupe_key()), keys.WEBHOOK_STATS, *record_keys]
            call_args: list[str | int] = [token, self.dedupe_ttl, event.stats_type,
                                          QUEUED_MARK, *record_args]
            if self.bursts is not None and hand_on is not None:
                burst_keys, burst_args = self.bursts.call_parts(message, self.clock())
                answer, handed = self._burst(keys=[*call_keys, *burst_keys],
                                             args=[*call_args, *burst_args])
            else:
                answer, handed = self._receive(keys=call_keys, args=call_args)
            current.set_attribute("zapa.routed_to", hand_on.task if hand_on and handed else "-")
        if text(answer) == "accepted" and handed:
            log_received(message, hand_on)
        return text(answer)

    def _apply_receipt(self, event: WebhookEvent, token: str) -> str:
        receipt = receipt_of(event.event_type, event.data, event.session)
        assert receipt is not None  # refused as `ignored` before
        here = trace.get_current_span()
        want_trace = here.is_recording()
        started = time.time_ns()
        receipt_keys, receipt_args = self.receipts.call_parts(
            receipt, now=started / 1e9, want_trace=want_trace)
        answer, *result = self._receipt(
            keys=[keys.seen(event.dedupe_key()), keys.WEBHOOK_STATS, *receipt_keys],
            args=[token, self.dedupe_ttl, event.stats_type, QUEUED_MARK, *receipt_args])
        if text(answer) != "accepted" or not result[0]:
            return text(answer)
        applied = applied_from(result)
        if want_trace and applied.traceparent:
            trace_receipt(applied, webhook=event.event_type, session=event.session,
                          linked=here, started_ns=started)
        if applied.outcome in (ReceiptOutcome.APPLIED, ReceiptOutcome.KEPT):
            log.info(line("message.status", message_id=applied.message_id or None,
                          session=event.session, webhook=event.event_type,
                          status=applied.status or receipt.status, outcome=applied.outcome))
        return "accepted"

    def _queue(self, event: WebhookEvent, token: str) -> str:
        """Dedupe and queue the event's `handle_event` task, in one round trip."""
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

