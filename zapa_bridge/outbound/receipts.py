"""zapw's receipts (`message.sent/delivered/read/failed`): one forward step of a record.

A receipt names the send by zapw's id. It is applied in one Redis call, by the webhook
intake itself (no task), and only forward: sent -> delivered -> read, or sent -> failed (a
dead letter). zapw may post a receipt before it answers the send, so before the worker has
recorded zapw's id: such a receipt is kept against that id, and the worker's `sent` change,
which writes the id, applies it in the same step. Nothing polls for it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import redis
from opentelemetry import trace

from zapa_bridge.outbound.status_store import (
    HISTORY_LIMIT,
    LUA_RECEIPT_STEPS,
    LUA_STATUSES,
    MessageStatus,
)
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.replies import texts
from zapa_bridge.tracing import finished_span

S = MessageStatus
STATUS_BY_EVENT = {"message.sent": S.SENT, "message.delivered": S.DELIVERED,
                   "message.read": S.READ, "message.failed": S.FAILED}
# WhatsApp's ack levels as zapw passes them in `data.status`.
STATUS_BY_ACK = {2: S.SENT, 3: S.DELIVERED, 4: S.READ, 5: S.READ}
RANK = {S.SENT: 1, S.DELIVERED: 2, S.READ: 3}
# How long a receipt waits for the `sent` record it came before. The worker writes it
# milliseconds after zapw answers; a send whose worker died is sent again under a new id.
KEPT_FOR = 900

# The functions any script that applies receipts is assembled from.
LUA_RECEIVE = (keys.LUA_KEY_PART + LUA_STATUSES + LUA_RECEIPT_STEPS
               + scripts.read(__package__, "receipts.receive.lua"))
_ONE = LUA_RECEIVE + scripts.read(__package__, "receipts.one.lua")


class ReceiptOutcome(enum.StrEnum):
    APPLIED = "applied"  # the record moved
    UNCHANGED = "unchanged"  # the record is already there or further
    KEPT = "kept"  # no record knows zapw's id yet: its `sent` change applies it
    UNKNOWN = "unknown"  # no record, and nothing to keep (a `sent`, or a record gone)


@dataclass(frozen=True, slots=True)
class Receipt:
    """One receipt: the status it reports for zapw's id `bridge_id` of `session`."""

    session: str
    bridge_id: str
    status: MessageStatus
    note: str  # the webhook's event type, for the record's history
    reason: str = ""  # why zapw failed it


@dataclass(frozen=True, slots=True)
class Applied:
    """What a receipt did: `message_id` is ours ('' when no record knows zapw's id),
    `status` the record's status now, `traceparent` the trace context it keeps."""

    outcome: ReceiptOutcome
    message_id: str
    status: str
    traceparent: str


def receipt_of(event_type: str, data: dict[str, Any], session: str) -> Receipt | None:
    """The receipt a status webhook carries; None without zapw's id. An ack level above
    the event's own status wins (zapw posts every receipt as `message.sent`)."""
    bridge_id = str(data.get("messageId") or "")
    if not bridge_id:
        return None
    status = STATUS_BY_EVENT[event_type]
    ack = STATUS_BY_ACK.get(data.get("status"))  # type: ignore[arg-type]
    if status in RANK and ack is not None and RANK[ack] > RANK[status]:
        status = ack
    reason = (f"bridge reported failure: {data.get('error') or 'unknown'}"
              if status is S.FAILED else "")
    return Receipt(session, bridge_id, status, note=event_type, reason=reason)


class Receipts:
    """Applies receipts to the records they name, in one call each."""

    def __init__(self, client: redis.Redis, *, retention: int) -> None:
        self.redis = client
        self.retention = retention
        self._one = client.register_script(_ONE)

    def call_parts(self, receipt: Receipt, *, now: float,
                   want_trace: bool) -> tuple[list[str], list[str]]:
        """The KEYS and ARGV of `receive_receipt` for `receipt` (receipts.one.lua's
        legend), for this script and the intake's, which passes them on."""
        return ([keys.bridge(receipt.session, receipt.bridge_id),
                 keys.kept_receipts(receipt.session, receipt.bridge_id), keys.DEAD],
                [receipt.status, receipt.note, receipt.reason, repr(now), str(self.retention),
                 str(HISTORY_LIMIT), keys.MESSAGE_PREFIX, str(KEPT_FOR),
                 "1" if want_trace else "0", keys.MESSAGE_BODY_PREFIX, receipt.bridge_id])

    def apply(self, receipt: Receipt, *, now: float, want_trace: bool = False) -> Applied:
        """Apply `receipt`, or keep it for the `sent` change of the send it names."""
        call_keys, args = self.call_parts(receipt, now=now, want_trace=want_trace)
        return applied_from(self._one(keys=call_keys, args=args))


def applied_from(reply: Any) -> Applied:
    """`receive_receipt`'s answer as an `Applied`."""
    outcome, message_id, status, traceparent = texts(reply)
    return Applied(ReceiptOutcome(outcome), message_id, status, traceparent)


def trace_receipt(applied: Applied, *, webhook: str, session: str, linked: trace.Span,
                  started_ns: int) -> None:
    """`zapa.receipt` in the trace of the send (the context its record keeps), linked to
    `linked`, the span of the webhook it came by; written once the call has told which
    record it moved."""
    finished_span("zapa.receipt", started_ns=started_ns, traceparent=applied.traceparent,
                  links=[trace.Link(linked.get_span_context())],
                  attributes={"zapa.message_id": applied.message_id, "zapa.session": session,
                              "zapa.webhook": webhook, "zapa.status": applied.status,
                              "zapa.changed": applied.outcome == ReceiptOutcome.APPLIED})
