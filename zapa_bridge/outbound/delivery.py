"""One delivery attempt of one message: the decisions of the outbound path.

The Celery task hands every message it receives to `Deliverer.deliver` and acts on the
outcome; every rule about what is sent, held, retried or dead-lettered lives here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry import trace

from zapa_bridge.bridge.client import BridgeClient, SendReceipt
from zapa_bridge.bridge.reconcile_requests import ReconcileRequests
from zapa_bridge.bridge.sessions import MISSING_REASON, SessionRegistry, SessionState
from zapa_bridge.errors import (
    BridgeError,
    BridgeUnauthorized,
    InvalidMessage,
    SessionNotConnected,
    SessionNotFound,
    SessionResolutionError,
)
from zapa_bridge.logs import line
from zapa_bridge.ops.metrics import Metrics
from zapa_bridge.outbound.dispatch import Dispatcher
from zapa_bridge.outbound.messages import OutboundMessage, build_message
from zapa_bridge.outbound.rate_limit import SessionRateLimiter
from zapa_bridge.outbound.retry_policy import RetryPolicy
from zapa_bridge.outbound.status_store import (
    FINAL_STATUSES,
    FailureCount,
    Increment,
    MessageRecord,
    MessageStatus,
    StatusStore,
    Transition,
)
from zapa_bridge.redaction import mask_phone
from zapa_bridge.store import keys, scripts
from zapa_bridge.tracing import context_from, span

log = logging.getLogger("zapa.delivery")
# Spread of the wake-up times of sends waiting for the same rate-limit slot, in seconds.
JITTER = 0.02
S = MessageStatus


Counts = tuple[Increment, ...]

# The record, the head of its lane and the state of its session, in one call.
_READ = scripts.read(__package__, "delivery.read.lua")


@dataclass(frozen=True, slots=True)
class _Seen:
    """What `_READ` found; `session` is None when the message names none and the registry
    knows no session with its number."""

    record: MessageRecord | None
    turn: str | None
    session: str | None
    state: SessionState | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a delivery attempt; `retry_in` is set when the task must run again."""

    status: str
    attempts: int = 0
    retry_in: float | None = None

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "attempts": self.attempts}


@dataclass(frozen=True, slots=True)
class _Loaded:
    """What `Deliverer._load` found: the record, what `_READ` read with it, and the message
    it carries (None when that is not a valid message: `invalid` says why)."""

    message_id: str
    record: MessageRecord
    seen: _Seen
    message: OutboundMessage | None
    invalid: InvalidMessage | None
    checked: float  # when the session's state was read


@dataclass(slots=True)
class _Attempt:
    """One attempt's context, from the checks to the send: the message, the session it goes
    through, that session's state as read at `checked` (a session that connected after it
    has already released its held messages), and when it was claimed."""

    message_id: str
    record: MessageRecord
    message: OutboundMessage
    session: str
    state: SessionState | None
    checked: float
    too_late: bool  # past its expires_at: dropped once claimed
    claimed: float = 0.0

    @property
    def number(self) -> int:
        """This attempt's number, which the claim counts."""
        return self.record.attempts + 1

    @property
    def slot(self) -> str:
        """Its rate-limit slot: one per attempt, so a retry takes a new one."""
        return f"{self.message_id}:{self.number}"


def _delivery_span(record: MessageRecord) -> AbstractContextManager[trace.Span]:
    """The span of one delivery, in the trace of the span that queued the message (its
    record keeps the context). A message published by another hand (the due-message mover,
    a release, the conversation's previous send) arrives in that hand's trace or none: it
    is put back in its turn's trace, with a link to the one it came by."""
    here = trace.get_current_span().get_span_context()
    turn = context_from({"traceparent": record.traceparent or ""})
    links: list[trace.Link] = []
    if turn is not None and trace.get_current_span(turn).get_span_context().trace_id \
            == here.trace_id:
        turn = None  # it came by its own trace: a plain child
    elif turn is not None and here.is_valid:
        links.append(trace.Link(here))
    return span("zapa.deliver", parent=turn, links=links,
                attributes={"zapa.message_id": record.id, "zapa.attempt": record.attempts + 1,
                            "zapa.priority": record.priority, "zapa.to": mask_phone(record.to),
                            "zapa.message_type": record.type})


class Deliverer:
    """Sends one message through the bridge and records what happened."""

    def __init__(
        self,
        store: StatusStore,
        client: BridgeClient,
        sessions: SessionRegistry,
        policy: RetryPolicy,
        metrics: Metrics,
        dispatcher: Dispatcher,
        limiter: SessionRateLimiter,
        *,
        lease_seconds: float,
        reconcile_requests: ReconcileRequests,
        managed_sessions: Iterable[str] = (),
    ) -> None:
        """`managed_sessions` (ZAPA_SESSIONS) and the sessions the registry knows are
        sessions the bridge must have: a 404 for one means the bridge lost it (a restart),
        so the message is held and a reconciliation asked for to create it again."""
        self.store = store
        self.client = client
        self.sessions = sessions
        self.policy = policy
        self.metrics = metrics
        self.dispatcher = dispatcher
        self.limiter = limiter
        self.lease_seconds = lease_seconds
        self.managed_sessions = frozenset(managed_sessions)
        self.reconcile_requests = reconcile_requests
        self._read_script = store.redis.register_script(_READ)

    def deliver(self, message_id: str, task_kwargs: dict[str, Any]) -> Outcome:
        """`task_kwargs` is empty for the messages we queue (the record holds the message);
        a message published by name carries its fields. Each step either ends the attempt
        with an outcome or passes it on to the next."""
        loaded = self._load(message_id, task_kwargs)
        if isinstance(loaded, Outcome):
            return loaded
        with _delivery_span(loaded.record) as current:
            outcome = self._deliver(loaded)
            current.set_attribute("zapa.outcome", outcome.status)
            return outcome

    def _deliver(self, loaded: _Loaded) -> Outcome:
        attempt = self._precheck(loaded)
        if isinstance(attempt, Outcome):
            return attempt
        waiting = self._acquire(attempt)
        if waiting is not None:
            return waiting
        unclaimed = self._claim(attempt)
        if unclaimed is not None:
            return unclaimed
        return self._attempt(attempt)

    def _load(self, message_id: str, task_kwargs: dict[str, Any]) -> Outcome | _Loaded:
        """Read the record, its lane's turn and its session in one call; a message published
        by name has no record yet, and gets one from the fields it carries."""
        message, invalid = self._message(task_kwargs) if task_kwargs else (None, None)
        checked = time.time()
        seen = self._read(message_id, message)
        if seen.record is None:
            if not task_kwargs:
                # Nothing to send: its record was deleted (by hand, or a FLUSHDB).
                log.error(line("message.lost", message_id=message_id,
                               reason="no status record"))
                return Outcome("unknown")
            # Published by name (send_task): take the message as given.
            session = task_kwargs.get("session") if isinstance(task_kwargs, dict) else None
            self.store.create(message_id, dict(task_kwargs), session=session,
                              note="queued by name")
            seen = self._read(message_id, message)
        record = seen.record
        assert record is not None
        if not task_kwargs:
            message, invalid = self._message(record.message)
        return _Loaded(message_id, record, seen, message, invalid, checked)

    def _precheck(self, loaded: _Loaded) -> Outcome | _Attempt:
        """Settle without a send what needs none: a message already done, not yet its turn,
        invalid, too late, with no session to go through, or whose session is offline."""
        message_id, record, message = loaded.message_id, loaded.record, loaded.message
        if record.status in FINAL_STATUSES:
            log.info(line("message.skipped", message_id=message_id, status=record.status))
            return Outcome(str(record.status), record.attempts)
        if record.lane and loaded.seen.turn != message_id:
            # A stray copy (a recovery sweep's, say) of a message still waiting behind an
            # earlier one of its conversation: its turn will dispatch it.
            log.info(line("message.not_its_turn", message_id=message_id))
            return Outcome(str(record.status), record.attempts)
        if message is None:
            return self._dead(message_id, f"invalid message: {loaded.invalid}",
                              record.attempts, record.session)
        too_late = message.expires_at is not None and time.time() > message.expires_at
        if too_late and record.status is not S.SENDING:
            return self._expire(message_id, record.attempts, record.session,
                                allowed_from={S.QUEUED, S.HELD})
        attempt = self._resolve_session(loaded, message, too_late=too_late)
        if isinstance(attempt, Outcome):
            return attempt
        # A record left `sending` by a crash goes through the claim, which honours the
        # lease of a worker that may still be sending it.
        state = attempt.state
        if state is not None and not state.connected and record.status is not S.SENDING:
            return self._hold_offline(message_id, attempt.session, state, record.attempts,
                                      since=attempt.checked)
        return attempt

    def _resolve_session(self, loaded: _Loaded, message: OutboundMessage, *,
                         too_late: bool) -> Outcome | _Attempt:
        """The session the message goes through: the one read with the record, else the
        bridge's session with its number (asking the bridge when the registry knows none)."""
        record = loaded.record
        session, state, checked = loaded.seen.session, loaded.seen.state, loaded.checked
        if session is None:
            # No session named and the registry knows no session with that number.
            try:
                session = self._session_for(message)
            except SessionResolutionError as exc:
                return self._dead(loaded.message_id, str(exc), record.attempts,
                                  record.session)
            except BridgeError as exc:
                return self._retry_or_dead(loaded.message_id, record.failures,
                                           record.attempts, exc)
            checked = time.time()
            state = self.sessions.get(session)
        return _Attempt(loaded.message_id, record, message, session, state, checked=checked,
                        too_late=too_late)

    def _acquire(self, attempt: _Attempt) -> Outcome | None:
        """Take a slot of the session's rate limit; without one, put the message off to
        when a slot frees (None: the attempt goes on)."""
        wait = self.limiter.acquire(attempt.session, attempt.slot)
        if wait > 0:
            # Waits in Redis, not in this worker, and costs no attempt. The jitter keeps the
            # session's waiting messages from always waking in the same order (none starves).
            self.dispatcher.defer(attempt.message_id,
                                  time.time() + wait + random.uniform(0, JITTER))
            self.metrics.count_rate_limited()
            log.info(line("message.rate_limited", message_id=attempt.message_id,
                          session=attempt.session, wait=f"{wait:.2f}"))
            return Outcome(str(attempt.record.status), attempt.record.attempts)
        return None

    def _claim(self, attempt: _Attempt) -> Outcome | None:
        """Mark the message `sending` under a lease, so no other worker sends it meanwhile
        (None: this worker holds it and sends it). The slot goes back if it is not ours."""
        message_id, record, session = attempt.message_id, attempt.record, attempt.session
        now = time.time()
        note = f"attempt {attempt.number}"
        if record.status is S.SENDING:
            note += ", after an interrupted one (possible duplicate)"
        claim = self.store.transition(
            message_id, MessageStatus.SENDING, count_attempt=True,
            lease_until=now + self.lease_seconds, fields={"session": session}, note=note,
            record=record,
        )
        if not claim.applied:
            self.limiter.give_back(session, attempt.slot)
        if claim.busy:
            # Another worker holds this message (a duplicate delivery); look again later.
            # The wait stays within the backoff cap, which the settings keep below the
            # visibility timeout.
            wait = min(self.policy.cap, max(0.5, (claim.lease_until or now) - now))
            return Outcome(str(MessageStatus.SENDING), record.attempts, retry_in=wait)
        if not claim.applied:
            return Outcome(str(claim.previous), record.attempts)
        attempt.claimed = now
        if attempt.too_late:  # a crash left it `sending`; now that we hold it, let it go
            self.limiter.give_back(session, attempt.slot)
            return self._expire(message_id, attempt.number, session, allowed_from={S.SENDING})
        if claim.previous is S.SENDING:
            # The last attempt died mid-send: zapw may have taken it, and it goes again.
            self.metrics.count_possible_duplicate()
            log.warning(line("message.possible_duplicate", message_id=message_id,
                             session=session))
        return None

    def _attempt(self, attempt: _Attempt) -> Outcome:
        """Send through the bridge and hand its answer to the handler of that outcome. The
        slot is settled whatever the answer: the call was made."""
        message_id, session, attempts = attempt.message_id, attempt.session, attempt.number
        started = time.monotonic()
        failed: BridgeError | None = None
        try:
            receipt = self.client.send(session, attempt.message)
        except BridgeError as exc:
            failed = exc
        finally:
            self.limiter.settle(session, attempt.slot)
        # The latency (and the outcome) are counted by the status change that follows.
        latency = self.metrics.send_latency(time.monotonic() - started)
        if isinstance(failed, SessionNotConnected):
            return self._hold_refused(message_id, session, attempts, since=attempt.claimed,
                                      counts=latency)
        if isinstance(failed, SessionNotFound) and self._bridge_lost(session, attempt.state):
            return self._hold_missing(message_id, session, attempts, since=attempt.claimed,
                                      counts=latency)
        if failed is not None:
            return self._retry_or_dead(message_id, attempt.record.failures, attempts, failed,
                                       counts=latency)
        return self._sent(attempt, receipt, counts=latency)

    def _sent(self, attempt: _Attempt, receipt: SendReceipt, *, counts: Counts) -> Outcome:
        """Record the bridge's id for the send (its status events name it), and hand the
        conversation on to its next message."""
        self._next_in_line(self.store.transition(
            attempt.message_id, MessageStatus.SENT, note="accepted by bridge",
            fields={"bridge_message_id": receipt.message_id, "reason": "",
                    "bridge_timestamp": receipt.timestamp},
            counts=(*counts, *self.metrics.sends("sent")), hand_on=True,
            record=replace(attempt.record, session=attempt.session),  # as the claim left it
        ))
        log.info(line("message.sent", message_id=attempt.message_id, session=attempt.session,
                      to=mask_phone(attempt.message.to), attempt=attempt.number,
                      bridge_message_id=receipt.message_id))
        return Outcome(str(MessageStatus.SENT), attempt.number)

    def _message(self, fields: dict[str, Any]) -> tuple[OutboundMessage | None,
                                                        InvalidMessage | None]:
        try:
            # A body over zapw's limit would be refused on every attempt: a dead letter now.
            return build_message(fields, max_body_bytes=self.client.max_body_bytes), None
        except InvalidMessage as exc:
            return None, exc

    def _read(self, message_id: str, message: OutboundMessage | None) -> _Seen:
        """`message`: the one the task carried; None to take it from the record."""
        session = phone = ""
        if message is not None:
            session, phone = message.session or "", message.from_number or ""
        raw, turn, session, state, body = self._read_script(
            keys=[self.store.key(message_id), keys.SESSIONS, keys.SESSION_PHONES,
                  keys.LANE_HEADS, self.store.body_key(message_id)],
            args=[session, "" if session else phone,
                  "1" if message is None else "0"])
        data = dict(zip(raw[::2], raw[1::2], strict=True))
        record = MessageRecord.from_hash(data, body or None) if data else None
        return _Seen(record, turn or None, session or None,
                     SessionState.from_json(state) if state else None)

    def _hold_refused(self, message_id: str, session: str, attempts: int, *,
                      since: float, counts: Counts = ()) -> Outcome:
        """Hold a send the bridge refused as not connected."""
        self.store.transition(message_id, MessageStatus.HELD, note="session not connected",
                              fields={"reason": f"session {session} not connected"},
                              counts=counts)
        return self._held_unless_back(message_id, session, attempts, since, "not connected")

    def _hold_offline(self, message_id: str, session: str, state: SessionState,
                      attempts: int, *, since: float) -> Outcome:
        """Hold without calling the bridge: the registry says the session is offline, or
        missing on the bridge (then a reconciliation is asked for, to create it again)."""
        reason = MISSING_REASON if state.missing else f"session {session} not connected"
        held = self.store.transition(
            message_id, MessageStatus.HELD,
            note="session missing on bridge" if state.missing else "session offline",
            fields={"session": session, "reason": reason},
            allowed_from={MessageStatus.QUEUED, MessageStatus.HELD},
        )
        if not held.applied:
            return Outcome(str(held.previous), attempts)
        if state.missing:
            self.reconcile_requests.ask()
        return self._held_unless_back(message_id, session, attempts, since,
                                      "missing" if state.missing else "session offline")

    def _bridge_lost(self, session: str, state: SessionState | None) -> bool:
        """Whether a 404 for `session` means the bridge lost it rather than a wrong id."""
        return session in self.managed_sessions or state is not None \
            or self.sessions.get(session) is not None

    def _hold_missing(self, message_id: str, session: str, attempts: int, *,
                      since: float, counts: Counts = ()) -> Outcome:
        """Hold a send the bridge answered 404 for a session it must have: it lost it
        (restarted). The registry learns it (unless the session came back meanwhile), so
        the next sends wait without calling the bridge, and a reconciliation creates it."""
        self.store.transition(message_id, MessageStatus.HELD, note="session missing on bridge",
                              fields={"reason": MISSING_REASON}, counts=counts)
        self.sessions.mark_missing(session, learnt_at=since)
        self.reconcile_requests.ask()
        return self._held_unless_back(message_id, session, attempts, since, "missing")

    def _held_unless_back(self, message_id: str, session: str, attempts: int, since: float,
                          reason: str) -> Outcome:
        """A session that connected since `since` has already released its held messages,
        before this one was held: queue it again rather than leave it to the next
        reconciliation."""
        state = self.sessions.get(session)
        if state is not None and state.connected and state.updated > since:
            self.store.transition(message_id, MessageStatus.QUEUED, note="session back",
                                  allowed_from={MessageStatus.HELD})
            return Outcome(str(MessageStatus.QUEUED), attempts, retry_in=0.0)
        log.info(line("message.held", message_id=message_id, session=session, reason=reason))
        self.metrics.count_send("held")
        return Outcome(str(MessageStatus.HELD), attempts)

    def _session_for(self, message: OutboundMessage) -> str:
        if message.session:
            return message.session
        assert message.from_number is not None
        found = self.sessions.session_for_phone(message.from_number)
        if found is None:
            self.sessions.replace_from_bridge(self.client.list_sessions())
            found = self.sessions.session_for_phone(message.from_number)
        if found is None:
            raise SessionResolutionError(
                f"no bridge session has number {mask_phone(message.from_number)}"
            )
        return found

    def _retry_or_dead(self, message_id: str, failures: int, attempts: int,
                       error: BridgeError, *, counts: Counts = ()) -> Outcome:
        """Queue a failed send again after the policy's backoff; an error no retry can
        help, or one failure too many, makes it a dead letter so its conversation goes on."""
        reason = f"{type(error).__name__}: {error.message}"
        failures += 1
        if not error.retryable:
            return self._dead(message_id, reason, attempts, error.session_id, counts=counts)
        if not self.policy.allows(failures):
            return self._dead(message_id, f"gave up after {attempts} attempts: {reason}",
                              attempts, error.session_id, counts=counts)
        delay = self.policy.delay(failures, slow=isinstance(error, BridgeUnauthorized))
        note = f"retry in {delay:.1f} s"
        if error.maybe_sent:
            # zapw may have taken it (no answer in time): the retry may send it twice.
            note += "; outcome unknown (possible duplicate)"
            self.metrics.count_possible_duplicate()
        self.store.transition(message_id, MessageStatus.QUEUED, failures=FailureCount.COUNT,
                              note=note, fields={"reason": reason},
                              counts=(*counts, *self.metrics.retries()))
        log.warning(line("message.retry", message_id=message_id, session=error.session_id,
                         attempt=attempts, error=type(error).__name__, retry_in=f"{delay:.2f}"))
        return Outcome(str(MessageStatus.QUEUED), attempts, retry_in=delay)

    def _expire(self, message_id: str, attempts: int, session: str | None, *,
                allowed_from: set[MessageStatus]) -> Outcome:
        """A reply not sent by its `expires_at` would reach the user too late: drop it."""
        reason = "expired: not sent before its expires_at"
        outcome = self.store.transition(message_id, MessageStatus.EXPIRED, note="too late",
                                        fields={"reason": reason}, allowed_from=allowed_from,
                                        counts=self.metrics.sends("expired"), hand_on=True)
        self._next_in_line(outcome)
        log.warning(line("message.expired", message_id=message_id, session=session,
                         attempts=attempts))
        status = MessageStatus.EXPIRED if outcome.applied else outcome.previous
        return Outcome(str(status), attempts)

    def fail(self, message_id: str, reason: str) -> Outcome:
        """Make a message a dead letter for a reason found outside an attempt (its state
        could not be used), so its conversation goes on."""
        record = self.store.get(message_id)
        return self._dead(message_id, reason, record.attempts if record else 0,
                          record.session if record else None)

    def _dead(self, message_id: str, reason: str, attempts: int,
              session: str | None = None, *, counts: Counts = ()) -> Outcome:
        """Give up on the message: it waits for an operator, and its conversation goes on."""
        self._next_in_line(self.store.transition(
            message_id, MessageStatus.FAILED, note="dead letter", fields={"reason": reason},
            counts=(*counts, *self.metrics.sends("failed")), hand_on=True))
        log.error(line("message.failed", message_id=message_id, session=session,
                       attempts=attempts, reason=reason))
        return Outcome(str(MessageStatus.FAILED), attempts)

    def _next_in_line(self, change: Transition) -> None:
        """Send on the next message of the conversation now (taken by the change that
        finished this one) rather than at the next tick of the due-message mover."""
        self.dispatcher.hand_on(change)
