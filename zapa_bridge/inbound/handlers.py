"""What each zapw event does. Called by the `handle_event` task, one event at a time.

- `message.received`: normalised, recorded and handed to the AI processing (`router`) in
  one step.
- `message.sent/delivered/read/failed`: moves the outbound message zapw's id names, only
  forward. Its span `zapa.receipt` joins the trace of the message's send (the
  `traceparent` its record keeps), with a link to the receipt webhook's own trace.
- `session.connected/disconnected`, `connection.status`: the session registry; a session
  that connects has its held messages released.
"""

from __future__ import annotations

import json
import logging
from contextlib import AbstractContextManager
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
from zapa_bridge.inbound.routing import InboundRouter
from zapa_bridge.logs import line
from zapa_bridge.outbound.outbox import Outbox
from zapa_bridge.outbound.status_store import MessageStatus, StatusStore
from zapa_bridge.redaction import mask_phone
from zapa_bridge.tracing import context_from, span

log = logging.getLogger("zapa.events")

S = MessageStatus
STATUS_BY_EVENT = {"message.sent": S.SENT, "message.delivered": S.DELIVERED,
                   "message.read": S.READ, "message.failed": S.FAILED}
# WhatsApp's ack levels as zapw passes them in `data.status`.
STATUS_BY_ACK = {2: S.SENT, 3: S.DELIVERED, 4: S.READ, 5: S.READ}
RANK = {S.SENT: 1, S.DELIVERED: 2, S.READ: 3}
FORWARD_FROM = {S.DELIVERED: {S.SENT}, S.READ: {S.SENT, S.DELIVERED},
                S.FAILED: {S.SENT}}
REASON_LIMIT = 1000  # characters of a disconnect reason kept in the session registry
SESSION_STATUS_BY_EVENT = {"session.connected": "connected",
                           "session.disconnected": "disconnected"}


@dataclass(frozen=True, slots=True)
class Handled:
    """The result of one event; `retry` asks the task to try the event again shortly."""

    outcome: str
    retry: bool = False


class EventHandler:
    def __init__(self, store: StatusStore, sessions: SessionRegistry, inbound: InboundLog,
                 outbox: Outbox, router: InboundRouter) -> None:
        self.store = store
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
        with span("zapa.inbound.received",
                  attributes={"zapa.session": message.session, "zapa.inbound_id": message.id,
                              "zapa.sender": mask_phone(message.sender),
                              "zapa.message_type": str(message.type)}) as current:
            hand_on = self.router.route(message)
            # Recorded and handed on in one step, and once only, even when this event is
            # handled again after a failure.
            first = self.inbound.receive(message, hand_on)
            current.set_attribute("zapa.routed_to", hand_on.task if hand_on and first else "-")
        if not first:
            return Handled("already routed")
        log.info(line("inbound.received", message_id=message.message_id,
                      session=message.session, sender=mask_phone(message.sender),
                      type=message.type, group=message.is_group or None,
                      routed_to=hand_on.task if hand_on else "-"))
        return Handled("routed" if hand_on else "recorded")

    def _status(self, event: WebhookEvent) -> Handled:
        bridge_id = str(event.data.get("messageId") or "")
        if not bridge_id:
            return Handled("ignored")
        message_id = self.store.find_by_bridge_id(event.session, bridge_id)
        if message_id is None:
            # The webhook can beat the worker recording `sent` for the same message.
            return Handled("unknown message", retry=True)
        status = _status_of(event)
        extra = {}
        if status is S.FAILED:
            extra["reason"] = f"bridge reported failure: {event.data.get('error') or 'unknown'}"
        with self._receipt_span(message_id, event) as current:
            outcome = self.store.transition(message_id, status, note=event.event_type,
                                            fields=extra,
                                            allowed_from=FORWARD_FROM.get(status, ()))
            current.set_attribute("zapa.status",
                                  str(status if outcome.applied else outcome.previous))
            current.set_attribute("zapa.changed", outcome.applied)
        log.info(line("message.status", message_id=message_id, session=event.session,
                      webhook=event.event_type,
                      status=status if outcome.applied else outcome.previous,
                      changed=outcome.applied))
        return Handled(str(status) if outcome.applied else "unchanged")

    def _receipt_span(self, message_id: str,
                      event: WebhookEvent) -> AbstractContextManager[trace.Span]:
        """A child of the span that queued the message (its record keeps the context), so
        the receipt ends the turn's trace; linked to the webhook's trace it came in by. Off
        a trace (tracing off), the record is not read for it."""
        here = trace.get_current_span().get_span_context()
        turn = (context_from({"traceparent": self.store.traceparent_of(message_id) or ""})
                if here.is_valid and trace.get_current_span().is_recording() else None)
        return span("zapa.receipt", parent=turn,
                    links=[trace.Link(here)] if turn is not None else [],
                    attributes={"zapa.message_id": message_id, "zapa.session": event.session,
                                "zapa.webhook": event.event_type})

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


def _status_of(event: WebhookEvent) -> MessageStatus:
    status = STATUS_BY_EVENT[event.event_type]
    ack = STATUS_BY_ACK.get(event.data.get("status"))  # type: ignore[arg-type]
    if status in RANK and ack is not None and RANK[ack] > RANK[status]:
        return ack
    return status


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
