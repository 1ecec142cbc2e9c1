"""Status records of outbound messages, keyed by message id (which is the Celery task id).

A record is one Redis hash. Every change of status goes through one Lua script so that the
status, the history and the indexes that follow from it (held messages per session, dead
letters, the bridge's message id) change together or not at all, even with many workers.
The same call adds to the counters its caller names (metrics) and may take the next message
of the conversation for the caller to publish, so that a send costs few round trips.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis

from zapa_bridge.store.prepared import PreparedMessage

PREFIX = "zapa:"
HISTORY_LIMIT = 20
# Messages that should be in a queue or with a worker (queued, sending), by when they were
# last put there: what the recovery sweep checks against the queues.
PENDING_INDEX = f"{PREFIX}pending"
# Messages waiting for a moment (a rate limit slot, or their turn that just came), scored
# by when they are due; the due-message mover publishes them (zapa_bridge.outbound.dispatch).
DUE_INDEX = f"{PREFIX}due"
# Field `lane` of this hash names the message of a conversation lane that may be sent now.
LANE_HEADS = f"{PREFIX}lane-heads"
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

# Conversation lanes (per-conversation order). The field `<lane>` of the `lane-heads` hash
# names the one message of the conversation that may be in a queue or with a worker, and a
# sorted set per lane holds the ids of the messages waiting behind it, scored by a sequence
# number taken when they joined. A message joins as head when the lane is empty, else at
# the back of the waiting set (so a conversation of one message costs one hash field and no
# key of its own); when the head finishes (sent or dead) the first waiting one becomes head
# and is marked due at once. Only the head is ever dispatched, so no message overtakes an
# earlier one, whatever happens to the head (retries, holds, crashes).
_LANE_JOIN = """
local function lane_join(prefix, key, id, lane)
  redis.call('HSET', key, 'lane', lane)
  if redis.call('HSETNX', prefix .. 'lane-heads', lane, id) == 1 then return true end
  local seq = redis.call('INCR', prefix .. 'lane-seq')
  redis.call('HSET', key, 'seq', seq)
  redis.call('ZADD', prefix .. 'lane:' .. lane, seq, id)
  return false
end
"""

_CREATE = _LANE_JOIN + """
local prefix, id, lane, once = ARGV[3], ARGV[5], ARGV[7], ARGV[8]
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- This very call again (redis-py repeats a call whose answer it lost): say what it did.
  if redis.call('HGET', KEYS[1], 'created') ~= ARGV[4] then return {0} end
  if lane ~= '' and redis.call('HGET', prefix .. 'lane-heads', lane) ~= id then return {2} end
  return {1}
end
if once ~= '' then
  -- An idempotency key: the first message owns it. A key whose message has no record was
  -- left by a call that failed to queue, and is taken over.
  local owner = redis.call('GET', once)
  if owner and redis.call('EXISTS', prefix .. 'msg:' .. owner) == 1 then return {3, owner} end
  redis.call('SET', once, id, 'EX', tonumber(ARGV[2]))
end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[1])))
redis.call('LPUSH', prefix .. 'msg-recent', id)
redis.call('LTRIM', prefix .. 'msg-recent', 0, tonumber(ARGV[6]) - 1)
if lane ~= '' and not lane_join(prefix, KEYS[1], id, lane) then
  redis.call('HSET', KEYS[1], 'history', cjson.encode({{tonumber(ARGV[4]), 'queued',
    'queued; waits for the earlier messages to the same recipient'}}))
  return {2}
end
redis.call('ZADD', prefix .. 'pending', tonumber(ARGV[4]), id)
if ARGV[9] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[9]) end
return {1}
"""

# Hands a finished head's lane to its next message, or ends the lane. The next message is
# marked due now; with `take`, a queued one is marked pending instead (as the due-message
# mover's take would) and its message returned too, for the caller to publish at once.
_LANE_LEAVE = """
local function lane_leave(prefix, id, lane, now, take)
  local members = prefix .. 'lane:' .. lane
  local heads = prefix .. 'lane-heads'
  redis.call('ZREM', members, id)
  if redis.call('HGET', heads, lane) ~= id then return '' end
  local nxt = redis.call('ZRANGE', members, 0, 0)[1]
  if not nxt then redis.call('HDEL', heads, lane); return '' end
  redis.call('ZREM', members, nxt)
  redis.call('HSET', heads, lane, nxt)
  if take then
    local record = redis.call('HMGET', prefix .. 'msg:' .. nxt, 'status', 'message')
    if (record[1] == 'queued' or record[1] == 'sending') and record[2] then
      redis.call('ZREM', prefix .. 'due', nxt)
      redis.call('ZADD', prefix .. 'pending', now, nxt)
      return nxt, record[2]
    end
  end
  redis.call('ZADD', prefix .. 'due', now, nxt)
  return nxt
end
"""

_TRANSITION = _LANE_JOIN + _LANE_LEAVE + """
local key, new = KEYS[1], ARGV[1]
local now, ttl, prefix = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[10]
-- Counters of what the caller did (metrics), whether or not the change applies.
for i = 14, #ARGV, 4 do
  if ARGV[i] ~= 'HINCRBY' and ARGV[i] ~= 'HINCRBYFLOAT' then
    return redis.error_reply('not a counter: ' .. ARGV[i])
  end
end
for i = 14, #ARGV, 4 do redis.call(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]) end
local cur = redis.call('HGET', key, 'status')
if not cur then return {0, ''} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == cur then allowed = true end end
if not allowed then return {0, cur} end
if ARGV[12] ~= '' and redis.call('HGET', key, 'updated') ~= ARGV[12] then return {0, cur} end
if cur == 'sending' and new == 'sending' then
  local lease = tonumber(redis.call('HGET', key, 'lease_until') or '0')
  if lease > now then return {-1, tostring(lease)} end
end
local final = {sent=true, delivered=true, read=true, failed=true, expired=true}
local fields = cjson.decode(ARGV[6])
local flat = {'status', new, 'updated', ARGV[3]}
for k, v in pairs(fields) do table.insert(flat, k); table.insert(flat, v) end
redis.call('HSET', key, unpack(flat))
if ARGV[7] == '1' then redis.call('HINCRBY', key, 'attempts', 1) end
if ARGV[8] == '+1' then redis.call('HINCRBY', key, 'failures', 1)
elseif ARGV[8] == '0' then redis.call('HSET', key, 'failures', 0) end
if ARGV[9] == '' then redis.call('HDEL', key, 'lease_until')
else redis.call('HSET', key, 'lease_until', ARGV[9]) end
local history = cjson.decode(redis.call('HGET', key, 'history') or '[]')
table.insert(history, {now, new, ARGV[5]})
while #history > tonumber(ARGV[11]) do table.remove(history, 1) end
redis.call('HSET', key, 'history', cjson.encode(history))
local id = redis.call('HGET', key, 'id')
local session = redis.call('HGET', key, 'session') or ''
if cur == 'held' and new ~= 'held' then
  local held = prefix .. 'held:' .. session
  redis.call('ZREM', held, id)
  if redis.call('ZCARD', held) == 0 then redis.call('SREM', prefix .. 'held-sessions', session) end
end
if new == 'held' then
  redis.call('ZADD', prefix .. 'held:' .. session, 'NX', now, id)
  redis.call('SADD', prefix .. 'held-sessions', session)
end
local dead = (new == 'failed' or new == 'expired')
if (cur == 'failed' or cur == 'expired') and not dead then
  redis.call('ZREM', prefix .. 'dead', id)
end
local lane = redis.call('HGET', key, 'lane') or ''
local dispatch, waiting, taken = '', false, false
if lane ~= '' and final[new] and not final[cur] then
  dispatch, taken = lane_leave(prefix, id, lane, now, ARGV[13] == '1')
elseif lane ~= '' and final[cur] and not final[new] then
  -- A dead letter replayed: back of its lane.
  if lane_join(prefix, key, id, lane) then dispatch = id else waiting = true end
end
if dead then redis.call('ZADD', prefix .. 'dead', now, id) end
-- Only a record that is done expires: queued messages carry their id alone (the message
-- is here), and dead letters wait for an operator.
if final[new] and not dead then
  redis.call('EXPIRE', key, ttl)
else
  redis.call('PERSIST', key)
end
if (new == 'queued' or new == 'sending') and not waiting then
  redis.call('ZADD', prefix .. 'pending', now, id)
else
  redis.call('ZREM', prefix .. 'pending', id)
end
local bridge_id = fields['bridge_message_id']
if bridge_id and bridge_id ~= '' then
  redis.call('SET', prefix .. 'bridge:' .. session .. ':' .. bridge_id, id, 'EX', ttl)
end
return {1, cur, dispatch, waiting and 1 or 0, taken or ''}
"""


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

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> MessageRecord:
        return cls(
            id=data["id"],
            status=MessageStatus(data["status"]),
            session=data.get("session") or None,
            to=data.get("to", ""),
            type=data.get("type", "text"),
            priority=data.get("priority", "default"),
            message=json.loads(data.get("message", "{}")),
            attempts=int(data.get("attempts", 0)),
            failures=int(data.get("failures", 0)),
            bridge_message_id=data.get("bridge_message_id") or None,
            reason=data.get("reason") or None,
            created=float(data.get("created", 0)),
            updated=float(data.get("updated", 0)),
            history=[{"at": at, "status": status, "note": note}
                     for at, status, note in json.loads(data.get("history", "[]"))],
            lane=data.get("lane") or None,
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
    """Reads and changes message records in Redis."""

    def __init__(self, client: redis.Redis, *, retention: int) -> None:
        self.redis = client
        self.retention = retention
        self._create = client.register_script(_CREATE)
        self._transition = client.register_script(_TRANSITION)

    @staticmethod
    def key(message_id: str) -> str:
        return f"{PREFIX}msg:{message_id}"

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
    ) -> tuple[Created, str]:
        """`create`, and own the Redis key `idempotency_key` (for the retention) in the same
        step; (DUPLICATE, the owner's id) if another message with a record owns it. When the
        record is READY, `push` goes on its queue in that step too."""
        now = time.time()
        fields = {
            "id": message_id, "status": S.QUEUED, "session": session or "",
            "to": message.get("to", ""), "type": message.get("type", "text"),
            "priority": message.get("priority", "default"),
            "message": json.dumps(message, separators=(",", ":")),
            "attempts": 0, "failures": 0, "created": now, "updated": now,
            "history": json.dumps([[now, S.QUEUED, note]]),
        }
        flat = [str(item) for pair in fields.items() for item in pair]
        key = self.key(message_id)
        created, *owner = self._create(keys=[key, push.queue if push else key],
                                       args=[json.dumps(flat), self.retention, PREFIX,
                                             repr(now), message_id, RECENT_LIMIT, lane or "",
                                             idempotency_key, push.payload if push else ""])
        return Created(int(created)), owner[0] if owner else message_id

    def recent(self, limit: int = 50) -> list[MessageRecord]:
        """The latest messages queued, newest first (those whose record still exists)."""
        ids = self.redis.lrange(f"{PREFIX}msg-recent", 0, min(limit, RECENT_LIMIT) - 1)
        return self.get_many(ids)

    def get(self, message_id: str) -> MessageRecord | None:
        data = self.redis.hgetall(self.key(message_id))
        return MessageRecord.from_hash(data) if data else None

    def get_many(self, message_ids: Iterable[str]) -> list[MessageRecord]:
        pipe = self.redis.pipeline(transaction=False)
        for message_id in message_ids:
            pipe.hgetall(self.key(message_id))
        return [MessageRecord.from_hash(data) for data in pipe.execute() if data]

    def transition(
        self,
        message_id: str,
        status: MessageStatus,
        *,
        note: str = "",
        fields: dict[str, Any] | None = None,
        count_attempt: bool = False,
        failures: str = "",
        lease_until: float | None = None,
        allowed_from: Iterable[MessageStatus] | None = None,
        unchanged_since: float | None = None,
        counts: Iterable[Increment] = (),
        hand_on: bool = False,
    ) -> Transition:
        """Move a record to `status` if its current status allows it.

        `failures` is "+1" to count a failed attempt, "0" to reset the count, "" to keep it.
        `unchanged_since` (a record's `updated`) refuses the change if anyone changed the
        record after it was read. `counts` are added whether or not the change applies.
        `hand_on`: a message whose turn comes with this change is taken for the caller to
        publish (`Transition.taken`) rather than left to the due-message mover.
        """
        allowed = ALLOWED_FROM[status] if allowed_from is None else frozenset(allowed_from)
        values = {key: "" if value is None else str(value)
                  for key, value in (fields or {}).items()}
        counters = [arg for key, name, by in counts
                    for arg in ("HINCRBYFLOAT" if isinstance(by, float) else "HINCRBY",
                                key, name, repr(by))]
        outcome, previous, *lane_change = self._transition(
            keys=[self.key(message_id)],
            args=[status, ",".join(allowed), repr(time.time()), self.retention, note,
                  json.dumps(values), "1" if count_attempt else "0", failures,
                  "" if lease_until is None else repr(lease_until), PREFIX, HISTORY_LIMIT,
                  "" if unchanged_since is None else repr(unchanged_since),
                  "1" if hand_on else "0", *counters],
        )
        if outcome == -1:
            return Transition(applied=False, previous=S.SENDING, lease_until=float(previous))
        dispatch, waiting, taken = lane_change or ("", 0, "")
        return Transition(applied=outcome == 1,
                          previous=MessageStatus(previous) if previous else None,
                          dispatch=(dispatch or None) if not taken else None,
                          waiting=bool(waiting),
                          taken=Turn(dispatch, json.loads(taken)) if taken else None)

    def turn_of(self, lane: str) -> str | None:
        """The message of `lane` that may be sent now (its head)."""
        return self.redis.hget(LANE_HEADS, lane)

    def find_by_bridge_id(self, session: str, bridge_message_id: str) -> str | None:
        """Our message id for the id zapw gave a send on `session`."""
        return self.redis.get(f"{PREFIX}bridge:{session}:{bridge_message_id}")
