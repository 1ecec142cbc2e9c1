"""What each zapw event does. Called by the `handle_event` task, one event at a time.

The webhook intake applies messages and receipts itself (zapa_bridge.inbound.intake); the
task sees them only when they were queued by an earlier version or when the intake's own
call was refused, and applies them the same way:
- `message.received`: normalised, recorded and handed to the AI processing (`router`) in
  one step.
- `message.sent/delivered/read/failed`: moves the outbound message zapw's id names, only
  forward (zapa_bridge.outbound.receipts). Its span `zapa.receipt` joins the trace of the
  message's send (the `traceparent` its record keeps), with a link to the event's trace.
- `session.connected/disconnected`, `connection.status`: the session registry; a session
  that connects has its held messages released.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from zapa_bridge.bridge.sessions import SessionRegistry
from zapa_bridge.inbound.events import (
    MESSAGE_RECEIVED,
    SESSION_EVENTS,
    STATUS_EVENTS,
    WebhookEvent,
)
from zapa_bridge.inbound.messages import InboundLog, normalize
from zapa_bridge.inbound.routing import InboundRouter, log_received, receiving
from zapa_bridge.logs import line
from zapa_bridge.outbound.outbox import Outbox
from zapa_bridge.outbound.receipts import ReceiptOutcome, Receipts, receipt_of, trace_receipt

log = logging.getLogger("zapa.events")

REASON_LIMIT = 1000  # characters of a disconnect reason kept in the session registry
SESSION_STATUS_BY_EVENT = {"session.connected": "connected",
                           "session.disconnected": "disconnected"}


@dataclass(frozen=True, slots=True)
class Handled:
    """The result of one event."""

    outcome: str


class EventHandler:
    def __init__(self, sessions: SessionRegistry, inbound: InboundLog, outbox: Outbox,
                 router: InboundRouter, receipts: Receipts) -> None:
        self.receipts = receipts
        self.sessions = sessions
        self.inbound = inbound
        self.outbox = outbox
        self.router = router

    def handle(self, event: WebhookEvent) -> Handled:
        if event.event_type == MESSAGE_RECEIVED:
            return self._received(event)
        if event.event_type in STATUS_EVENTS:
            return self._status(event)
        if event.event_type in SESSION_EVENTS:
            return self._session(event)
        return Handled("ignored")

    def _received(self, event: WebhookEvent) -> Handled:
        message = normalize(event)
        with receiving(message) as current:
            hand_on = self.router.route(message)
            # Recorded and handed on in one step, and once only, even when this event is
            # handled again after a failure.
            first = self.inbound.receive(message, hand_on)
            current.set_attribute("zapa.routed_to", hand_on.task if hand_on and first else "-")
        if not first:
            return Handled("already routed")
        log_received(message, hand_on)
        return Handled("routed" if hand_on else "recorded")

    def _status(self, event: WebhookEvent) -> Handled:
        """A receipt queued as a task (by an earlier version, or when the intake's own call
        was refused): applied as the intake applies it, or kept for the `sent` change."""
        receipt = receipt_of(event.event_type, event.data, event.session)
        if receipt is None:
            return Handled("ignored")
        here = trace.get_current_span()
        started = time.time_ns()
        applied = self.receipts.apply(receipt, now=started / 1e9,
                                      want_trace=here.is_recording())
        if applied.traceparent:
            trace_receipt(applied, webhook=event.event_type, session=event.session,
                          linked=here, started_ns=started)
        log.info(line("message.status", message_id=applied.message_id or None,
                      session=event.session, webhook=event.event_type,
                      status=applied.status or receipt.status, outcome=applied.outcome))
        if applied.outcome is ReceiptOutcome.APPLIED:
            return Handled(applied.status)
        return Handled(str(applied.outcome))

    def _session(self, event: WebhookEvent) -> Handled:
        data = event.data
        status = SESSION_STATUS_BY_EVENT.get(event.event_type) or str(data.get("status") or "")
        if not status:
            return Handled("ignored")
        reason = data.get("reason")
        applied = self.sessions.apply_event(
            event.session, status, at=event.timestamp or 0,
            phone_number=_optional_digits(data.get("phoneNumber")), name=data.get("name"),
            reason=_describe_reason(reason) if status != "connected" else None,
        )
        if not applied:
            return Handled("stale")
        log.info(line("session.status", session=event.session, status=status))
        if status == "connected":
            released = self.outbox.release_held(event.session)
            return Handled(f"connected, released {released}")
        return Handled(status)


def _optional_digits(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _describe_reason(reason: Any) -> str | None:
    """zapw's disconnect reason (Baileys' error object, opaque) as JSON text, bounded: the
    whole object when it is small, else its Boom payload, else a cut of its JSON."""
    if reason in (None, "", {}):
        return None
    if isinstance(reason, str):
        return reason[:REASON_LIMIT]
    whole = json.dumps(reason, sort_keys=True, separators=(",", ":"), default=str)
    if len(whole) <= REASON_LIMIT:
        return whole
    output = reason.get("output") if isinstance(reason, dict) else None
    payload = output.get("payload") if isinstance(output, dict) else None
    if isinstance(payload, dict):
        summary = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        if len(summary) <= REASON_LIMIT:
            return summary
    return json.dumps({"truncated": whole[:REASON_LIMIT // 2]})
