"""Status records of outbound messages, keyed by message id (which is the Celery task id).

A record is one Redis hash, and the message it carries (its JSON) a string key beside it
(`keys.message_body`): every value of a waiting record is then at most 64 bytes, so Redis
keeps the hash as a compact listpack at its default settings, under a third of a hash
table's size. The body is written, expired, persisted and deleted with the record, in the
same scripts. A record written before the body had a key of its own keeps the message in
its `message` field, which is read when there is no body.

Every change of status goes through one Lua script so that the status, the history and the
indexes that follow from it (held messages per session, dead letters, the bridge's message
id) change together or not at all, even with many workers. The same call adds to the
counters its caller names (metrics), settles the rate-limit slot of the bridge call it
records, applies the receipts that came before the `sent` it records, and may take the
next message of the conversation for the caller to send or publish, so that a send costs
few round trips. The script's body is a Lua function (`LUA_CHANGE`), so that the
delivery's claim can read and claim in one call.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis

from zapa_bridge.outbound.rate_limit import Slot
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.durability import NO_WAIT, ReplicaWait
from zapa_bridge.store.publisher import PreparedMessage
from zapa_bridge.store.replies import optional_text, text_hash, texts

HISTORY_LIMIT = 20
RECENT_LIMIT = 200


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    HELD = "held"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    EXPIRED = "expired"


S = MessageStatus
DEAD_STATUSES = frozenset({S.FAILED, S.EXPIRED})
FINAL_STATUSES = frozenset({S.SENT, S.DELIVERED, S.READ, S.FAILED, S.EXPIRED})


class FailureCount(enum.StrEnum):
    """What a change of status does to the record's count of failed attempts; the values
    are what `_TRANSITION` reads (ARGV[8])."""

    KEEP = ""
    COUNT = "+1"
    RESET = "0"

# Which statuses each status may be entered from. SENDING -> SENDING is a re-delivery after a
# crash and is only granted once the previous claim's lease has run out.
ALLOWED_FROM: dict[MessageStatus, frozenset[MessageStatus]] = {
    S.QUEUED: frozenset({S.SENDING, S.HELD, S.FAILED, S.EXPIRED}),
    S.SENDING: frozenset({S.QUEUED, S.HELD, S.SENDING}),
    S.HELD: frozenset({S.QUEUED, S.SENDING}),
    S.SENT: frozenset({S.SENDING}),
    S.DELIVERED: frozenset({S.SENDING, S.SENT}),
    S.READ: frozenset({S.SENDING, S.SENT, S.DELIVERED}),
    # From SENT only on the bridge's own `message.failed` event.
    S.FAILED: frozenset({S.QUEUED, S.SENDING, S.HELD, S.SENT}),
    S.EXPIRED: frozenset({S.QUEUED, S.HELD, S.SENDING}),
}


# What each receipt of zapw's may follow (a `sent` receipt changes nothing: the worker
# records it), and the order receipts kept for a record are applied in, the order a message
# lives them. zapa_bridge.outbound.receipts applies them; the `sent` change applies those
# that came before it.
RECEIPT_FROM: dict[MessageStatus, frozenset[MessageStatus]] = {
    S.DELIVERED: frozenset({S.SENT}),
    S.READ: frozenset({S.SENT, S.DELIVERED}),
    S.FAILED: frozenset({S.SENT}),
}
RECEIPT_ORDER = (S.DELIVERED, S.READ, S.FAILED)


def _lua_statuses() -> str:
    """`S`, each status by its name, and the sets `FINAL` and `DEAD` (status -> true): the
    preamble of every script that reads or writes a status, which it names only so."""
    def members(statuses: frozenset[MessageStatus]) -> str:
        return ", ".join(f"[S.{status.name}]=true" for status in S if status in statuses)

    names = ", ".join(f"{status.name}={scripts.lua_string(status)}" for status in S)
    return (f"local S = {{{names}}}\n"
            f"local FINAL = {{{members(FINAL_STATUSES)}}}\n"
            f"local DEAD = {{{members(DEAD_STATUSES)}}}\n")


LUA_STATUSES = _lua_statuses()


def _lua_receipt_tables() -> str:
    def status_set(statuses: frozenset[MessageStatus]) -> str:
        return "{" + ", ".join(f"[S.{status.name}]=true" for status in sorted(statuses)) + "}"

    follows = ", ".join(f"[S.{status.name}]={status_set(before)}"
                        for status, before in RECEIPT_FROM.items())
    order = ", ".join(f"S.{status.name}" for status in RECEIPT_ORDER)
    return (f"local RECEIPT_FROM = {{{follows}}}\n"
            f"local RECEIPT_ORDER = {{{order}}}\n")


# The functions of every script that applies receipts (after `LUA_STATUSES`).
LUA_RECEIPT_STEPS = (_lua_receipt_tables()
                     + scripts.read(__package__, "status_store.receipt.lua"))

# Each script is the constants and functions it uses, then its body (the file that opens
# with its legend).
_LANE_JOIN = scripts.read(__package__, "status_store.lane_join.lua")
_LANE_LEAVE = scripts.read(__package__, "status_store.lane_leave.lua")
_CREATE = (keys.LUA_KEY_PART + LUA_STATUSES + _LANE_JOIN
           + scripts.read(__package__, "status_store.create.lua"))
# change(K, A), the body of the transition script, with what it uses: other scripts that
# end in a change of status open with it too.
LUA_CHANGE = (keys.LUA_KEY_PART + LUA_STATUSES + LUA_RECEIPT_STEPS + _LANE_JOIN + _LANE_LEAVE
              + scripts.read(__package__, "status_store.change.lua"))
_TRANSITION = LUA_CHANGE + scripts.read(__package__, "status_store.transition.lua")
# The transition script's refusal of keys built from a session or lane the record does not
# have (its error reply starts with this).
_STALE_KEYS = "STALEKEYS"


class Created(enum.Enum):
    """What `StatusStore.create` did: nothing (the id exists, or another message holds its
    idempotency key), or a record that is ready to be queued now, or one that waits behind
    an earlier message of its conversation."""

    EXISTS = 0
    READY = 1
    WAITING = 2
    DUPLICATE = 3


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message's status, what it carries, and how it got there."""

    id: str
    status: MessageStatus
    session: str | None
    to: str
    type: str
    priority: str
    message: dict[str, Any]
    attempts: int = 0
    failures: int = 0
    bridge_message_id: str | None = None
    reason: str | None = None
    created: float = 0.0
    updated: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    lane: str | None = None  # its conversation (see `lane_of`); None: not ordered
    traceparent: str | None = None  # the trace context of the span that queued it
    # A long text sent in parts: each part's zapw id and status (outbound/text_parts.py).
    parts: list[dict[str, Any]] = field(default_factory=list)
    paced: bool = False  # counted by pacing already (zapa_bridge.outbound.pacing)

    @classmethod
    def from_hash(cls, data: dict[str, str], body: str | None = None) -> MessageRecord:
        """The record from its hash and its message `body` (None: none stored, then the
        hash's own `message` field, as records written before the body had a key)."""
        return cls(
            id=data["id"],
            status=MessageStatus(data["status"]),
            session=data.get("session") or None,
            to=data.get("to", ""),
            type=data.get("type", "text"),
            priority=data.get("priority", "default"),
            message=json.loads(data.get("message", "{}") if body is None else body),
            attempts=int(data.get("attempts", 0)),
            failures=int(data.get("failures", 0)),
            bridge_message_id=data.get("bridge_message_id") or None,
            reason=data.get("reason") or None,
            created=float(data.get("created", 0)),
            updated=float(data.get("updated", 0)),
            history=[{"at": at, "status": status, "note": note}
                     for at, status, note in json.loads(data.get("history", "[]"))],
            lane=data.get("lane") or None,
            traceparent=data.get("traceparent") or None,
            parts=json.loads(data["parts"]) if data.get("parts") else [],
            paced=data.get("paced") == "1",
        )

    def as_dict(self) -> dict[str, Any]:
        """The record for an API answer, without the message content."""
        return {
            "id": self.id, "status": str(self.status), "session": self.session,
            "to": self.to, "type": self.type, "priority": self.priority,
            "attempts": self.attempts, "failures": self.failures,
            "bridge_message_id": self.bridge_message_id,
            "reason": self.reason, "created": self.created, "updated": self.updated,
            "history": self.history,
            **({"parts": self.parts} if self.parts else {}),
        }


class Increment(NamedTuple):
    """A counter a change of status adds to in the same call: `by` (int or float) to the
    `field` of the hash `key`."""

    key: str
    field: str
    by: int | float


@dataclass(frozen=True, slots=True)
class Turn:
    """The next message of a conversation, taken by the change that finished the one before
    (`hand_on`): marked pending, not due, so the caller must publish it."""

    id: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Transition:
    """The answer to a change of status: applied, refused, or busy (someone holds a lease).

    `dispatch` names a message whose turn in its conversation came with this change (the
    next one after a finished message, or a replayed one that found its lane empty); it is
    marked due, and the caller may publish it at once. `taken` is that next message when
    the change was asked to hand it on, already taken from the due-message mover (then
    `dispatch` is None). `waiting`: the replayed message waits behind earlier ones of its
    conversation.
    """

    applied: bool
    previous: MessageStatus | None
    lease_until: float | None = None
    dispatch: str | None = None
    waiting: bool = False
    taken: Turn | None = None

    @property
    def busy(self) -> bool:
        return self.lease_until is not None


class StatusStore:
    """Reads and changes message records in Redis, through a client that decodes responses
    (store.connection): its replies are str, which redis-py types as bytes | str."""

    def __init__(self, client: redis.Redis, *, retention: int,
                 durability: ReplicaWait = NO_WAIT) -> None:
        self.redis = client
        self.retention = retention
        # A created record is an accepted send: it waits for the replicas asked for.
        self._create = durability.wrap(client.register_script(_CREATE))
        self._transition = client.register_script(_TRANSITION)

    @staticmethod
    def key(message_id: str) -> str:
        return keys.message(message_id)

    @staticmethod
    def body_key(message_id: str) -> str:
        return keys.message_body(message_id)

    def create(
        self,
        message_id: str,
        message: dict[str, Any],
        *,
        session: str | None,
        lane: str | None = None,
        note: str = "queued",
    ) -> Created:
        """Create the record as `queued`, at the back of its conversation's `lane`."""
        return self.create_unique(message_id, message, session=session, lane=lane, note=note,
                                  idempotency_key="")[0]

    def create_unique(
        self,
        message_id: str,
        message: dict[str, Any],
        *,
        session: str | None,
        idempotency_key: str,
        lane: str | None = None,
        note: str = "queued",
        push: PreparedMessage | None = None,
        traceparent: str = "",
    ) -> tuple[Created, str]:
        """`create`, and own the idempotency key `idempotency_key` (for the retention) in the
        same step; (DUPLICATE, the owner's id) if another message with a record owns it.
        When the record is READY, `push` goes on its queue in that step too. `traceparent`
        is kept for the message's later spans (receipts, a send published later)."""
        now = time.time()
        fields = {
            "id": message_id, "status": S.QUEUED, "session": session or "",
            "to": message.get("to", ""), "type": message.get("type", "text"),
            "priority": message.get("priority", "default"),
            "attempts": 0, "failures": 0, "created": now, "updated": now,
            "history": json.dumps([[now, S.QUEUED, note]], separators=(",", ":")),
        }
        if traceparent:
            fields["traceparent"] = traceparent
        flat = [str(item) for pair in fields.items() for item in pair]
        key = self.key(message_id)
        created, *owner = self._create(
            keys=[key, push.queue if push else key,
                  keys.idempotency(idempotency_key) if idempotency_key else key,
                  keys.lane(lane) if lane else key,
                  keys.LANE_HEADS, keys.LANE_SEQ, keys.MESSAGES_RECENT, keys.PENDING,
                  self.body_key(message_id)],
            args=[json.dumps(flat), self.retention, keys.MESSAGE_PREFIX, repr(now), message_id,
                  RECENT_LIMIT, lane or "", "1" if idempotency_key else "",
                  push.payload if push else "", json.dumps(message, separators=(",", ":"))])
        return Created(int(created)), owner[0] if owner else message_id

    def recent(self, limit: int = 50) -> list[MessageRecord]:
        """The latest messages queued, newest first (those whose record still exists)."""
        ids = self.redis.lrange(keys.MESSAGES_RECENT, 0, min(limit, RECENT_LIMIT) - 1)
        return self.get_many(texts(ids))

    def get(self, message_id: str) -> MessageRecord | None:
        return next(iter(self.get_many([message_id])), None)

    def get_many(self, message_ids: Iterable[str]) -> list[MessageRecord]:
        """The records that exist, each read with its body in one step (MULTI): a record
        deleted or replayed meanwhile is never seen with another moment's body."""
        pipe = self.redis.pipeline(transaction=True)
        for message_id in message_ids:
            pipe.hgetall(self.key(message_id))
            pipe.get(self.body_key(message_id))
        replies = pipe.execute()
        return [MessageRecord.from_hash(text_hash(data), optional_text(body))
                for data, body in zip(replies[::2], replies[1::2], strict=True) if data]

    def transition(
        self,
        message_id: str,
        status: MessageStatus,
        *,
        note: str = "",
        fields: dict[str, Any] | None = None,
        count_attempt: bool = False,
        failures: FailureCount = FailureCount.KEEP,
        lease_until: float | None = None,
        allowed_from: Iterable[MessageStatus] | None = None,
        unchanged_since: float | None = None,
        counts: Iterable[Increment] = (),
        hand_on: bool = False,
        record: MessageRecord | None = None,
        settle: Slot | None = None,
    ) -> Transition:
        """Move a record to `status` if its current status allows it.

        `failures`: COUNT a failed attempt, RESET the count, or KEEP it.
        `unchanged_since` (a record's `updated`) refuses the change if anyone changed the
        record after it was read. `counts` are added whether or not the change applies.
        `hand_on`: a message whose turn comes with this change is taken for the caller to
        publish (`Transition.taken`) rather than left to the due-message mover.
        `record`: the record as the caller read it, whose lane and session (unless `fields`
        sets one) name the keys the change touches; without it they are read first. The
        script checks them, and keys of a session or lane the record no longer has are
        built again, once, from a fresh read.
        `settle`: the rate-limit slot of the bridge call this change records, which counts
        from now on (when the bridge answered), whether or not the change applies.
        """
        if record is not None and record.id != message_id:
            raise ValueError(f"the record of {record.id} given for a change of {message_id}")
        allowed = ALLOWED_FROM[status] if allowed_from is None else frozenset(allowed_from)
        values = {key: "" if value is None else str(value)
                  for key, value in (fields or {}).items()}
        if "lane" in values:
            raise ValueError("a record's lane is set when it joins one, never by fields")
        counts = tuple(counts)
        counters = [arg for _, name, by in counts
                    for arg in ("HINCRBYFLOAT" if isinstance(by, float) else "HINCRBY",
                                name, repr(by))]
        key = self.key(message_id)

        def run(stored_session: str, lane: str) -> list[Any]:
            session = values.get("session", stored_session)
            bridge_id = values.get("bridge_message_id", "")
            return self._transition(  # type: ignore[no-any-return]
                keys=[key, keys.PENDING, keys.DUE, keys.DEAD, keys.HELD_SESSIONS,
                      keys.LANE_HEADS, keys.LANE_SEQ, keys.held(session),
                      keys.lane(lane) if lane else key,
                      keys.bridge(session, bridge_id) if bridge_id else key,
                      settle.key if settle else key, self.body_key(message_id),
                      keys.kept_receipts(session, bridge_id) if bridge_id else key,
                      *(count.key for count in counts)],
                args=[status, ",".join(allowed), repr(time.time()), self.retention, note,
                      json.dumps(values), "1" if count_attempt else "0", failures,
                      "" if lease_until is None else repr(lease_until), keys.MESSAGE_PREFIX,
                      HISTORY_LIMIT, "" if unchanged_since is None else repr(unchanged_since),
                      "1" if hand_on else "0", session, lane, settle.name if settle else "",
                      keys.MESSAGE_BODY_PREFIX,
                      *counters],
            )

        try:
            outcome, previous, *lane_change = (
                run(*self._placement(message_id)) if record is None
                else run(record.session or "", record.lane or ""))
        except redis.ResponseError as exc:
            # `record` was stale, or another change gave the record its session between our
            # read and the script.
            if not str(exc).startswith(_STALE_KEYS):
                raise
            outcome, previous, *lane_change = run(*self._placement(message_id))
        if outcome == -1:
            return Transition(applied=False, previous=S.SENDING, lease_until=float(previous))
        dispatch, waiting, taken = lane_change or ("", 0, "")
        return Transition(applied=outcome == 1,
                          previous=MessageStatus(previous) if previous else None,
                          dispatch=(dispatch or None) if not taken else None,
                          waiting=bool(waiting),
                          taken=Turn(dispatch, json.loads(taken)) if taken else None)

    def _placement(self, message_id: str) -> tuple[str, str]:
        """The session and the lane ('' none) of a record, which name keys of its changes."""
        session, lane = self.redis.hmget(self.key(message_id), ["session", "lane"])
        return optional_text(session) or "", optional_text(lane) or ""

    def turn_of(self, lane: str) -> str | None:
        """The message of `lane` that may be sent now (its head)."""
        return optional_text(self.redis.hget(keys.LANE_HEADS, lane))

    def traceparent_of(self, message_id: str) -> str | None:
        """The trace context kept with the message's record, if any."""
        return optional_text(self.redis.hget(self.key(message_id), "traceparent"))

    def find_by_bridge_id(self, session: str, bridge_message_id: str) -> str | None:
        """Our message id for the id zapw gave a send on `session`."""
        return optional_text(self.redis.get(keys.bridge(session, bridge_message_id)))
