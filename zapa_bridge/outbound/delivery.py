"""One delivery attempt of one message: the decisions of the outbound path.

The Celery task hands every message it receives to `Deliverer.deliver` and acts on the
outcome; every rule about what is sent, held, retried or dead-lettered lives here.

A send's common path (its record queued, its turn, its session not known offline, a rate
slot free) is two calls to Redis: one that reads and claims (`delivery.claim.lua`), and the
change that records the bridge's answer, settles the slot and takes the conversation's next
message. That next message, due at once, is sent in the same run rather than published,
while the run is young (`deliver`'s `go_on_for`); a crash meanwhile loses none of them, since
each was taken as pending, which the lost-message sweep watches. Every other path reads
first and decides in Python, at a call or two more.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

import redis
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
from zapa_bridge.outbound import text_parts
from zapa_bridge.outbound.dispatch import Dispatcher
from zapa_bridge.outbound.holds import DAILY_LIMIT
from zapa_bridge.outbound.messages import OutboundMessage, build_message
from zapa_bridge.outbound.pacing import Pacing, Verdict
from zapa_bridge.outbound.rate_limit import LUA_RATE_TAKE, SessionRateLimiter, Slot
from zapa_bridge.outbound.retry_policy import RetryPolicy
from zapa_bridge.outbound.status_store import (
    FINAL_STATUSES,
    HISTORY_LIMIT,
    LUA_CHANGE,
    FailureCount,
    Increment,
    MessageRecord,
    MessageStatus,
    StatusStore,
    Transition,
    Turn,
)
from zapa_bridge.redaction import mask_phone
from zapa_bridge.store import keys, scripts
from zapa_bridge.tracing import context_from, span

log = logging.getLogger("zapa.delivery")
# Spread of the wake-up times of sends waiting for the same rate-limit slot, in seconds.
JITTER = 0.02
# The most next messages of its conversation one run sends after its own.
CHAIN_MOST = 50
S = MessageStatus


Counts = tuple[Increment, ...]

# The record, the head of its lane and the state of its session, in one call that also
# claims the message (and its rate slot) on the common path.
_CLAIM = LUA_CHANGE + LUA_RATE_TAKE + scripts.read(__package__, "delivery.claim.lua")


@dataclass(frozen=True, slots=True)
class _Seen:
    """What `_CLAIM` found; `session` is None when the message names none and the registry
    knows no session with its number. `claimed`: the call claimed the message (and its rate
    slot), as read in `record`; `wait`: it would have, but no slot was free for that long."""

    record: MessageRecord | None
    turn: str | None
    session: str | None
    state: SessionState | None
    claimed: bool = False
    wait: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a delivery attempt; `retry_in` is set when the task must run again.
    `taken`: the conversation's next message, taken by the attempt's last change, for
    `deliver` to send or publish."""

    status: str
    attempts: int = 0
    retry_in: float | None = None
    taken: Turn | None = None

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
        return _slot(self.message_id, self.number)


@dataclass(frozen=True, slots=True)
class _Split:
    """The part of a long text an attempt sends: the first zapw has not taken."""

    index: int
    total: int
    message: OutboundMessage  # that part, as a message of its own
    parts: list[dict[str, Any]]  # the record's progress, as the claim read it
    failed: int | None  # a part zapw failed after taking it: the message is a dead letter

    @classmethod
    def of(cls, attempt: _Attempt) -> _Split | None:
        texts = attempt.message.parts
        if texts is None:
            return None
        progress = attempt.record.parts
        index = min(text_parts.next_part(progress, len(texts)), len(texts) - 1)
        return cls(index, len(texts), replace(attempt.message, text=texts[index]), progress,
                   text_parts.failed_part(progress))

    @property
    def label(self) -> str:
        return f"part {self.index + 1} of {self.total}"

    @property
    def last(self) -> bool:
        """Whether every other part is taken (those before it are, being the first one not):
        this one's answer finishes the message."""
        return all(later < len(self.parts) and self.parts[later].get("status") in text_parts.TAKEN
                   for later in range(self.index + 1, self.total))

    def progress(self, receipt: SendReceipt) -> list[dict[str, Any]]:
        """The record's parts once zapw took this one."""
        return text_parts.with_sent(self.parts, self.total, self.index, receipt.message_id)

    def failure_reason(self) -> str:
        assert self.failed is not None
        part = self.parts[self.failed]
        return f"part {self.failed + 1} of {self.total} failed: " \
               f"{part.get('reason') or 'bridge reported failure'}"


def _slot(message_id: str, attempt: int) -> str:
    """The rate-limit slot of attempt `attempt` (as delivery.claim.lua names it too)."""
    return f"{message_id}:{attempt}"


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
    """Sends a message through the bridge and records what happened; then, in the same run,
    the next messages of its conversation while they are due at once."""

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
        owner: str = "",
        max_text_parts: int = 1,
        pacing: Pacing | None = None,
    ) -> None:
        """`managed_sessions` (ZAPA_SESSIONS) and the sessions the registry knows are
        sessions the bridge must have: a 404 for one means the bridge lost it (a restart),
        so the message is held and a reconciliation asked for to create it again. `owner`:
        this worker process, as a claim records it (zapa_bridge.outbound.crash_recovery).
        `max_text_parts` (ZAPA_MAX_TEXT_PARTS): how many parts a long text may be sent in.
        `pacing`: the recipient and daily limits; while either is on, every message goes
        through `_prepared` (the read claims nothing), where pacing is checked first."""
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
        self.owner = owner
        self.max_text_parts = max_text_parts
        self.pacing = pacing if pacing is not None and pacing.on else None
        self._claim_script = store.redis.register_script(_CLAIM)
        # The session the last claim was for: the rate log the next claim expects, since a
        # queued task names only its message (most deployments send through one session).
        self._recent_session: str | None = None

    def deliver(self, message_id: str, task_kwargs: dict[str, Any], *,
                go_on_for: float = 0.0) -> Outcome:
        """`task_kwargs` is empty for the messages we queue (the record holds the message);
        a message published by name carries its fields. `go_on_for`: for how many seconds
        from now this run may go on sending the next messages of the conversation, each as
        its turn comes (at most the claim's lease, and CHAIN_MOST of them); the one it stops
        at is published. The outcome is this message's; one to try again (`retry_in`)
        waits in the due set, not in the task."""
        until = time.monotonic() + min(go_on_for, self.lease_seconds)
        outcome = self._deliver_one(message_id, task_kwargs)
        if outcome.retry_in is not None:
            self.dispatcher.defer(message_id, time.time() + outcome.retry_in)
        self._go_on(outcome.taken, until=until)
        return outcome

    def _deliver_one(self, message_id: str, task_kwargs: dict[str, Any],
                     expected: str | None = None) -> Outcome:
        """One message. Each step either ends the attempt with an outcome or passes it on
        to the next. `expected`: the session it likely goes through, if known."""
        loaded = self._load(message_id, task_kwargs, expected)
        if isinstance(loaded, Outcome):
            return loaded
        with _delivery_span(loaded.record) as current:
            outcome = self._deliver(loaded)
            current.set_attribute("zapa.outcome", outcome.status)
            return outcome

    def _go_on(self, turn: Turn | None, *, until: float) -> None:
        """Send the conversation's next messages here while the run is young (its Celery
        message is delivered again once it outlasts the visibility timeout); publish the
        one it stops at."""
        for _ in range(CHAIN_MOST):
            if turn is None or time.monotonic() >= until:
                break
            turn = self._deliver_turn(turn)
        if turn is not None:
            self.dispatcher.publish_taken(turn)

    def _deliver_turn(self, turn: Turn) -> Turn | None:
        """Deliver a message this run took as the next of its conversation; the one after
        it, when it handed on. One that must wait (a retry, a lease held elsewhere) waits
        in the due set; one whose state could not be used goes back on its queue, or, with
        the broker away too, is left pending for the lost-message sweep."""
        session = turn.message.get("session")
        try:
            outcome = self._deliver_one(turn.id, {},
                                        session if isinstance(session, str) else None)
            if outcome.retry_in is not None:
                self.dispatcher.defer(turn.id, time.time() + outcome.retry_in)
                return None
        except redis.RedisError as exc:
            log.warning(line("message.chain_interrupted", message_id=turn.id,
                             error=type(exc).__name__))
            with contextlib.suppress(redis.RedisError):
                self.dispatcher.publish_taken(turn)
            return None
        return outcome.taken

    def _deliver(self, loaded: _Loaded) -> Outcome:
        attempt = self._claimed(loaded) if loaded.seen.claimed else self._prepared(loaded)
        if isinstance(attempt, Outcome):
            return attempt
        self._recent_session = attempt.session
        return self._attempt(attempt)

    def _prepared(self, loaded: _Loaded) -> Outcome | _Attempt:
        """Off the common path: the checks, pacing, then the rate slot and the claim, each a
        call of its own."""
        attempt = self._precheck(loaded)
        if isinstance(attempt, Outcome):
            return attempt
        paced = self._pace(attempt)
        if paced is not None:
            return paced
        if loaded.seen.wait > 0:  # the read found every check passed but no slot free
            return self._defer_for_slot(attempt, loaded.seen.wait)
        waiting = self._acquire(attempt)
        if waiting is not None:
            return waiting
        unclaimed = self._claim(attempt)
        if unclaimed is not None:
            return unclaimed
        return attempt

    def _claimed(self, loaded: _Loaded) -> Outcome | _Attempt:
        """The read claimed the message and its slot, having checked all but the message
        itself: one no longer valid (changed by hand, or by a newer version's rules) gives
        its slot back and becomes a dead letter."""
        record, session = loaded.record, loaded.seen.session
        assert session is not None
        if loaded.message is None:
            self.limiter.give_back(session, _slot(loaded.message_id, record.attempts + 1))
            return self._dead(loaded.message_id, f"invalid message: {loaded.invalid}",
                              record.attempts + 1, session)
        return _Attempt(loaded.message_id, record, loaded.message, session, loaded.seen.state,
                        checked=loaded.checked, too_late=False, claimed=loaded.checked)

    def _load(self, message_id: str, task_kwargs: dict[str, Any],
              expected: str | None) -> Outcome | _Loaded:
        """Read the record, its lane's turn and its session in one call, which claims the
        message on the common path; a message published by name has no record yet, and
        gets one from the fields it carries."""
        message, invalid = self._message(task_kwargs) if task_kwargs else (None, None)
        may_claim = invalid is None and self.pacing is None
        checked = time.time()
        seen = self._read(message_id, message, checked, expected, may_claim=may_claim)
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
            checked = time.time()
            seen = self._read(message_id, message, checked, expected, may_claim=may_claim)
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

    def _pace(self, attempt: _Attempt) -> Outcome | None:
        """Check the message against its session's daily limit and its recipient's rate
        (None: it goes on). It is counted once: a message counted before (a retry, the next
        part of a split reply), or left `sending` by a crash, is not checked again."""
        record = attempt.record
        if self.pacing is None or record.paced or record.status is S.SENDING:
            return None
        verdict = self.pacing.take(attempt.message_id, self.store.key(attempt.message_id),
                                   attempt.session, attempt.message.to)
        if verdict.held_until is not None:
            return self._hold_for_day(attempt, verdict)
        if verdict.wait > 0:
            return self._defer_for_recipient(attempt, verdict.wait)
        return None

    def _defer_for_recipient(self, attempt: _Attempt, wait: float) -> Outcome:
        """Put the message off, still `queued`, until its recipient's window frees: the
        wait, noted on its history, is in the due set (`deliver` defers it)."""
        changed = self.store.transition(
            attempt.message_id, MessageStatus.QUEUED,
            note=f"paced: recipient limit, next try in {wait:.1f} s",
            fields={"session": attempt.session}, allowed_from={S.QUEUED, S.HELD},
            record=attempt.record)
        if not changed.applied:
            return Outcome(str(changed.previous), attempt.record.attempts)
        self.metrics.count_paced()
        log.info(line("message.paced", message_id=attempt.message_id, session=attempt.session,
                      to=mask_phone(attempt.message.to), wait=f"{wait:.2f}"))
        return Outcome(str(MessageStatus.QUEUED), attempt.record.attempts, retry_in=wait)

    def _hold_for_day(self, attempt: _Attempt, verdict: Verdict) -> Outcome:
        """Hold a message over its session's daily limit until the next UTC day: in the due
        set first, so that a crash before the hold leaves a queued message that comes back
        then, never a held one that nothing releases."""
        assert verdict.held_until is not None
        self.dispatcher.defer(attempt.message_id, verdict.held_until)
        held = self.store.transition(
            attempt.message_id, MessageStatus.HELD,
            note=f"daily limit {verdict.limit} reached, waits for {verdict.opens}",
            fields={"session": attempt.session, "reason": DAILY_LIMIT},
            allowed_from={S.QUEUED, S.HELD}, record=attempt.record)
        if not held.applied:
            return Outcome(str(held.previous), attempt.record.attempts)
        self.metrics.count_daily_held()
        log.info(line("message.held", message_id=attempt.message_id, session=attempt.session,
                      reason=DAILY_LIMIT, sent_today=verdict.sent, until=verdict.opens))
        return Outcome(str(MessageStatus.HELD), attempt.record.attempts)

    def _acquire(self, attempt: _Attempt) -> Outcome | None:
        """Take a slot of the session's rate limit; without one, put the message off to
        when a slot frees (None: the attempt goes on)."""
        wait = self.limiter.acquire(attempt.session, attempt.slot)
        return self._defer_for_slot(attempt, wait) if wait > 0 else None

    def _defer_for_slot(self, attempt: _Attempt, wait: float) -> Outcome:
        """Put the message off to when a slot of its session frees, in `wait` seconds."""
        # Waits in Redis, not in this worker, and costs no attempt. The jitter keeps the
        # session's waiting messages from always waking in the same order (none starves).
        self.dispatcher.defer(attempt.message_id,
                              time.time() + wait + random.uniform(0, JITTER))
        self.metrics.count_rate_limited()
        log.info(line("message.rate_limited", message_id=attempt.message_id,
                      session=attempt.session, wait=f"{wait:.2f}"))
        return Outcome(str(attempt.record.status), attempt.record.attempts)

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
            lease_until=now + self.lease_seconds, fields={"session": session, "owner": self.owner},
            note=note, record=record,
        )
        if not claim.applied:
            self.limiter.give_back(session, attempt.slot)
        if claim.busy:
            # Another worker holds this message (a duplicate delivery); look again later,
            # from the due set.
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
        slot is settled whatever the answer, the call was made: by the change of status
        that records the answer."""
        message_id, session, attempts = attempt.message_id, attempt.session, attempt.number
        split = _Split.of(attempt)
        if split is not None and split.failed is not None:
            self.limiter.give_back(session, attempt.slot)
            return self._dead(message_id, split.failure_reason(), attempts, session)
        sending = attempt.message if split is None else split.message
        started = time.monotonic()
        failed: BridgeError | None = None
        try:
            receipt = self.client.send(session, sending)
        except BridgeError as exc:
            failed = exc
        except BaseException:
            self.limiter.settle(session, attempt.slot)
            raise
        # The latency (and the outcome) are counted by the status change that follows.
        latency = self.metrics.send_latency(time.monotonic() - started)
        settle = self.limiter.slot(session, attempt.slot)
        if isinstance(failed, SessionNotConnected):
            return self._hold_refused(message_id, session, attempts, since=attempt.claimed,
                                      counts=latency, settle=settle)
        if isinstance(failed, SessionNotFound) and self._bridge_lost(session, attempt.state):
            return self._hold_missing(message_id, session, attempts, since=attempt.claimed,
                                      counts=latency, settle=settle)
        if failed is not None:
            return self._retry_or_dead(message_id, attempt.record.failures, attempts, failed,
                                       counts=latency, settle=settle,
                                       part=None if split is None else split.label)
        if split is not None and not split.last:
            return self._part_sent(attempt, split, receipt, counts=latency, settle=settle)
        return self._sent(attempt, receipt, counts=latency, settle=settle,
                          parts=None if split is None else split.progress(receipt))

    def _part_sent(self, attempt: _Attempt, split: _Split, receipt: SendReceipt, *,
                   counts: Counts, settle: Slot | None) -> Outcome:
        """Record a part zapw took, with its id, and queue the message again for its next
        part: it stays the head of its conversation, so nothing else goes to the recipient
        between its parts, and this run sends that part next (`taken`) while it is young."""
        self.store.transition(
            attempt.message_id, MessageStatus.QUEUED,
            note=f"{split.label} accepted by bridge", failures=FailureCount.RESET,
            fields={"bridge_message_id": receipt.message_id, "reason": "",
                    "parts": text_parts.encode(split.progress(receipt))},
            counts=counts, settle=settle,
            record=replace(attempt.record, session=attempt.session))
        log.info(line("message.part_sent", message_id=attempt.message_id,
                      session=attempt.session, to=mask_phone(attempt.message.to),
                      part=split.index + 1, parts=split.total,
                      bridge_message_id=receipt.message_id))
        return Outcome(str(MessageStatus.QUEUED), attempt.number,
                       taken=Turn(attempt.message_id, attempt.record.message))

    def _sent(self, attempt: _Attempt, receipt: SendReceipt, *, counts: Counts,
              settle: Slot | None, parts: list[dict[str, Any]] | None = None) -> Outcome:
        """Record the bridge's id for the send (its status events name it), and take the
        conversation's next message. `parts`: a long text's parts, its last just sent."""
        progress = {} if parts is None else {"parts": text_parts.encode(parts)}
        taken = self._next_in_line(self.store.transition(
            attempt.message_id, MessageStatus.SENT, note="accepted by bridge",
            fields={"bridge_message_id": receipt.message_id, "reason": "",
                    "bridge_timestamp": receipt.timestamp, **progress},
            counts=(*counts, *self.metrics.sends("sent")), hand_on=True, settle=settle,
            record=replace(attempt.record, session=attempt.session),  # as the claim left it
        ))
        log.info(line("message.sent", message_id=attempt.message_id, session=attempt.session,
                      to=mask_phone(attempt.message.to), attempt=attempt.number,
                      bridge_message_id=receipt.message_id))
        return Outcome(str(MessageStatus.SENT), attempt.number, taken=taken)

    def _message(self, fields: dict[str, Any]) -> tuple[OutboundMessage | None,
                                                        InvalidMessage | None]:
        try:
            # A body over zapw's limit would be refused on every attempt: a dead letter now.
            return build_message(fields, max_body_bytes=self.client.max_body_bytes,
                                 max_text_parts=self.max_text_parts), None
        except InvalidMessage as exc:
            return None, exc

    def _read(self, message_id: str, message: OutboundMessage | None, now: float,
              expected: str | None, *, may_claim: bool) -> _Seen:
        """`message`: the one the task carried; None to take it from the record. The claim
        takes a rate slot only in the log of the session it expects: the message's own,
        else `expected`, else the one of the last claim."""
        session = phone = ""
        if message is not None:
            session, phone = message.session or "", message.from_number or ""
        terms = self.limiter.terms(session or expected or self._recent_session)
        limit = terms.limit
        key = self.store.key(message_id)
        raw, turn, session, state, claimed, wait, body = self._claim_script(
            keys=[key, keys.SESSIONS, keys.SESSION_PHONES, keys.LANE_HEADS, keys.PENDING,
                  terms.key or key, self.store.body_key(message_id)],
            args=[session, "" if session else phone, "1" if message is None else "0",
                  repr(now), repr(now + self.lease_seconds), HISTORY_LIMIT,
                  "1" if may_claim else "0", "1" if terms.anywhere else "0", terms.session,
                  limit.limit if limit else "", repr(limit.window) if limit else "",
                  terms.keep_ms, self.owner])
        data = dict(zip(raw[::2], raw[1::2], strict=True))
        record = MessageRecord.from_hash(data, body or None) if data else None
        return _Seen(record, turn or None, session or None,
                     SessionState.from_json(state) if state else None,
                     claimed=claimed == 1, wait=float(wait))

    def _hold_refused(self, message_id: str, session: str, attempts: int, *,
                      since: float, counts: Counts, settle: Slot | None) -> Outcome:
        """Hold a send the bridge refused as not connected."""
        self.store.transition(message_id, MessageStatus.HELD, note="session not connected",
                              fields={"reason": f"session {session} not connected"},
                              counts=counts, settle=settle)
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
                      since: float, counts: Counts, settle: Slot | None) -> Outcome:
        """Hold a send the bridge answered 404 for a session it must have: it lost it
        (restarted). The registry learns it (unless the session came back meanwhile), so
        the next sends wait without calling the bridge, and a reconciliation creates it."""
        self.store.transition(message_id, MessageStatus.HELD, note="session missing on bridge",
                              fields={"reason": MISSING_REASON}, counts=counts,
                              settle=settle)
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
                       error: BridgeError, *, counts: Counts = (),
                       settle: Slot | None = None, part: str | None = None) -> Outcome:
        """Queue a failed send again after the policy's backoff; an error no retry can
        help, or one failure too many, makes it a dead letter so its conversation goes on.
        `part`: which part of a long text failed."""
        reason = f"{type(error).__name__}: {error.message}"
        if part is not None:
            reason = f"{part}: {reason}"
        failures += 1
        if not error.retryable:
            return self._dead(message_id, reason, attempts, error.session_id, counts=counts,
                              settle=settle)
        if not self.policy.allows(failures):
            return self._dead(message_id, f"gave up after {attempts} attempts: {reason}",
                              attempts, error.session_id, counts=counts, settle=settle)
        delay = self.policy.delay(failures, slow=isinstance(error, BridgeUnauthorized))
        note = f"retry in {delay:.1f} s"
        if error.maybe_sent:
            # zapw may have taken it (no answer in time): the retry may send it twice.
            note += "; outcome unknown (possible duplicate)"
            self.metrics.count_possible_duplicate()
        self.store.transition(message_id, MessageStatus.QUEUED, failures=FailureCount.COUNT,
                              note=note, fields={"reason": reason}, settle=settle,
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
        taken = self._next_in_line(outcome)
        log.warning(line("message.expired", message_id=message_id, session=session,
                         attempts=attempts))
        status = MessageStatus.EXPIRED if outcome.applied else outcome.previous
        return Outcome(str(status), attempts, taken=taken)

    def fail(self, message_id: str, reason: str) -> Outcome:
        """Make a message a dead letter for a reason found outside an attempt (its state
        could not be used), so its conversation goes on."""
        record = self.store.get(message_id)
        outcome = self._dead(message_id, reason, record.attempts if record else 0,
                             record.session if record else None)
        if outcome.taken is not None:
            self.dispatcher.publish_taken(outcome.taken)
        return replace(outcome, taken=None)

    def _dead(self, message_id: str, reason: str, attempts: int,
              session: str | None = None, *, counts: Counts = (),
              settle: Slot | None = None) -> Outcome:
        """Give up on the message: it waits for an operator, and its conversation goes on."""
        taken = self._next_in_line(self.store.transition(
            message_id, MessageStatus.FAILED, note="dead letter", fields={"reason": reason},
            counts=(*counts, *self.metrics.sends("failed")), hand_on=True, settle=settle))
        log.error(line("message.failed", message_id=message_id, session=session,
                       attempts=attempts, reason=reason))
        return Outcome(str(MessageStatus.FAILED), attempts, taken=taken)

    def _next_in_line(self, change: Transition) -> Turn | None:
        """The next message of the conversation, taken by the change that finished this one
        for `deliver` to send or publish now; one the change only marked due (the change
        was not the finishing one) is published now unless another worker took it first,
        rather than at the next tick of the due-message mover."""
        if change.taken is None:
            self.dispatcher.hand_on(change)
        return change.taken
