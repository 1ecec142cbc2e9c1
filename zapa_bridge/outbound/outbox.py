"""The outbox: puts messages on the queue with their status record, and takes them back
off hold or out of the dead letters.

It does not know Celery: enqueue pushes the publisher's send task in the call that writes
the record, and releases and replays go back on the queue through the dispatcher's
`requeue`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid

import redis
from opentelemetry.trace import SpanKind

from zapa_bridge.errors import InvalidMessage, NotADeadLetter, QueueUnavailable
from zapa_bridge.logs import line
from zapa_bridge.outbound import text_parts
from zapa_bridge.outbound.dispatch import Dispatcher
from zapa_bridge.outbound.holds import HeldMessages, waits_for_its_day
from zapa_bridge.outbound.messages import OutboundMessage
from zapa_bridge.outbound.status_store import (
    DEAD_STATUSES,
    Created,
    FailureCount,
    MessageRecord,
    MessageStatus,
    StatusStore,
)
from zapa_bridge.redaction import mask_phone
from zapa_bridge.store.publisher import Publisher
from zapa_bridge.tracing import current_traceparent, span

log = logging.getLogger("zapa.outbox")


class Outbox:
    def __init__(self, store: StatusStore, dispatcher: Dispatcher,
                 publisher: Publisher) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.publisher = publisher
        self.held = HeldMessages(store.redis)

    def enqueue(self, message: OutboundMessage, message_id: str | None = None) -> str:
        """Record the message as `queued` and queue it; returns its id.

        With an idempotency key, only the first call within the retention queues anything;
        every other call (concurrent ones included) gets the first call's message id. The
        record is created and the key taken in one step, so a losing call's record never
        exists for a worker to hand its conversation on to.
        """
        message_id = message_id or str(uuid.uuid4())
        with span("zapa.enqueue", kind=SpanKind.PRODUCER,
                  attributes={"zapa.message_id": message_id, "zapa.to": mask_phone(message.to),
                              "zapa.priority": str(message.priority),
                              "zapa.session": message.session or ""}) as current:
            try:
                # The send task and the record carry this span's context: the send continues
                # the trace, and so do its receipts and a later publish of a waiting message.
                push = self.publisher.prepare_send(message_id, message.priority, message.to)
                created, owner = self.store.create_unique(
                    message_id, message.to_task_kwargs(), session=message.session,
                    lane=message.conversation,
                    idempotency_key=message.idempotency_key or "", push=push,
                    traceparent=current_traceparent().get("traceparent", ""))
            except redis.RedisError as exc:
                raise QueueUnavailable(
                    f"status store unreachable: {type(exc).__name__}") from None
            current.set_attribute("zapa.created", created.name.lower())
        if created is Created.EXISTS:
            raise InvalidMessage("task_id", "a message with this id already exists")
        if created is Created.DUPLICATE:
            return owner
        if created is Created.WAITING:
            # Its turn comes when the earlier messages of its conversation are done.
            log.info(line("message.queued", message_id=message_id, waiting="earlier message",
                          **message.log_fields()))
            return message_id
        log.info(line("message.queued", message_id=message_id, **message.log_fields()))
        return message_id

    def release_held(self, session: str) -> int:
        """Re-queue every message held for `session`; returns how many were released.

        Publishing comes before the status change: a worker may take the message while it
        still says `held` (that is allowed), but a crash here never strands one. A message
        held for the session's daily limit stays: its day releases it (the due set).
        """
        released = 0
        for record in self.store.get_many(self.held.ids(session)):
            if record.status is not MessageStatus.HELD or waits_for_its_day(record):
                continue
            if not self.dispatcher.requeue(record.id, record.message):
                continue
            # Only if nobody touched it since: a worker may already have taken the published
            # copy and held it again, and then it must stay held (and indexed).
            self.store.transition(record.id, MessageStatus.QUEUED, note="released",
                                  allowed_from={MessageStatus.HELD},
                                  unchanged_since=record.updated)
            released += 1
        if released:
            log.info(line("held.released", session=session, messages=released))
        return released

    def expire_held(self, validity: float, now: float | None = None) -> int:
        """Turn messages held longer than `validity` seconds into `expired` dead letters; not
        those that wait for their session's next day (pacing never drops a message), which
        the due set releases."""
        cutoff = (now or time.time()) - validity
        expired = 0
        for session in self.held.sessions():
            for record in self.store.get_many(self.held.held_before(session, cutoff)):
                if waits_for_its_day(record):
                    continue
                outcome = self.store.transition(
                    record.id, MessageStatus.EXPIRED, allowed_from={MessageStatus.HELD},
                    note="hold validity passed",
                    fields={"reason": f"expired: held for more than {validity:g} s"},
                )
                expired += outcome.applied
        if expired:
            log.warning(line("held.expired", messages=expired))
        return expired

    def replay(self, message_id: str) -> MessageRecord:
        """Queue a dead letter again under its original id, with a fresh retry budget."""
        record = self.store.get(message_id)
        if record is None or record.status not in DEAD_STATUSES:
            raise NotADeadLetter(f"message {message_id} is not a dead letter")
        # An operator's replay is a decision to send now: a stale-reply expiry no longer holds.
        stored = {key: value for key, value in record.message.items() if key != "expires_at"}
        # The record keeps what is published, so a later hold and release sends the same.
        fields = {"reason": "", "message": json.dumps(stored, separators=(",", ":"))}
        if record.parts:  # a long text: its parts zapw took stay sent, a failed one goes again
            fields["parts"] = text_parts.encode(text_parts.cleared_failures(record.parts))
        outcome = self.store.transition(
            message_id, MessageStatus.QUEUED, note="replayed", failures=FailureCount.RESET,
            fields=fields, allowed_from=DEAD_STATUSES)
        if not outcome.applied:
            raise NotADeadLetter(f"message {message_id} is not a dead letter")
        if outcome.waiting:
            # Back of its conversation: sent after the messages queued since it failed.
            log.info(line("dead_letter.replayed", message_id=message_id,
                          waiting="earlier message"))
            return self._reread(message_id)
        # Read before it is published: a worker may take it at once, and the answer is what
        # the replay did (queued), not how far a worker got since.
        replayed = self._reread(message_id)
        try:
            queued = self.dispatcher.requeue(message_id, stored)
        except QueueUnavailable:
            with contextlib.suppress(redis.RedisError):
                self.store.transition(message_id, record.status, note="replay failed",
                                      fields={"reason": record.reason},
                                      allowed_from={MessageStatus.QUEUED})
            raise
        if not queued:  # held, or made a dead letter again by the requeue: say so
            return self._reread(message_id)
        log.info(line("dead_letter.replayed", message_id=message_id))
        return replayed

    def _reread(self, message_id: str) -> MessageRecord:
        record = self.store.get(message_id)
        assert record is not None
        return record
