"""Where an inbound message goes: the task that hands it to the AI processing.

The task message carries the trace context of a producer span `zapa.hand_on`, so the task
Zapa's worker runs (its Celery instrumentation reads the `traceparent` header) continues
the conversation turn's trace.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from zapa_bridge.inbound.messages import InboundMessage, InboundTask
from zapa_bridge.logs import line
from zapa_bridge.redaction import mask_phone
from zapa_bridge.store.publisher import Publisher
from zapa_bridge.tracing import span

log = logging.getLogger("zapa.events")


class InboundRouter:
    """Hands inbound messages to ZAPA_INBOUND_TASK, by name, on ZAPA_INBOUND_QUEUE. The
    event handler queues the task in the same Redis call that records the message."""

    def __init__(self, publisher: Publisher, *, task: str | None, queue: str) -> None:
        self.publisher = publisher
        self.task = task
        self.queue = queue

    def route(self, message: InboundMessage) -> InboundTask | None:
        """The task message for `message`; None when no task is configured."""
        if not self.task:
            log.warning(line("inbound.not_routed", message_id=message.message_id,
                             session=message.session, reason="ZAPA_INBOUND_TASK is not set"))
            return None
        return self.route_fields(message.as_dict())

    def route_fields(self, message: dict[str, Any]) -> InboundTask | None:
        """The task message for an inbound message as its `message` keyword holds it (a
        burst's, say); None when no task is configured."""
        if not self.task:
            return None
        with span("zapa.hand_on", kind=SpanKind.PRODUCER,
                  attributes={"messaging.destination.name": self.queue,
                              "zapa.task": self.task, "zapa.inbound_id": message["id"]}):
            prepared = self.publisher.prepare(
                self.task, self.queue, {"message": message},
                kwargsrepr=repr({"message": message["id"],
                                 "from": mask_phone(message["sender"])}),
                ignore_result=False)
        return InboundTask(self.task, prepared)


def receiving(message: InboundMessage) -> AbstractContextManager[trace.Span]:
    """The span of taking one inbound message in (its number masked, no text)."""
    return span("zapa.inbound.received",
                attributes={"zapa.session": message.session, "zapa.inbound_id": message.id,
                            "zapa.sender": mask_phone(message.sender),
                            "zapa.message_type": str(message.type)})


def log_received(message: InboundMessage, hand_on: InboundTask | None) -> None:
    """The one line of a message taken in and handed on (or kept for no one)."""
    log.info(line("inbound.received", message_id=message.message_id,
                  session=message.session, sender=mask_phone(message.sender),
                  type=message.type, group=message.is_group or None,
                  routed_to=hand_on.task if hand_on else "-"))
