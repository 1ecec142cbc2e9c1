"""Inbound dead letters: zapw events the worker could not apply, kept for an operator.

An event that fails in a way a retry cannot mend (a value our scripts refuse, a body that
is not a zapw event, a bug) is not retried forever and not dropped: it is kept here with
its whole body, the error, when it failed and after how many attempts. Operators list,
replay and purge them (admin API, admin page, CLI); `/metrics` and health count them.

Each is a hash `zapa:in-dead:<id>` (the id is the `handle_event` task's), listed in the
sorted set `zapa:in-dead` by when it failed. A replay puts the event back on the events
queue under the same id, so a second failure lands on the same entry with its replay
count; a replayed entry leaves the list at once and its hash expires after the retention.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from zapa_bridge.errors import NotADeadLetter
from zapa_bridge.outbound.status_store import PREFIX
from zapa_bridge.store.prepared import PreparedMessage

INBOUND_DEAD_INDEX = f"{PREFIX}in-dead"
INBOUND_DEAD_COUNTER = "inbound_dead_letters"
ERROR_LIMIT = 500

PrepareReplay = Callable[[str, Any], PreparedMessage]
"""The `handle_event` task message for an event body under the given task id."""

# KEYS[1] the entry's hash, KEYS[2] the index, KEYS[3] the metrics counters hash.
# ARGV[1] id, ARGV[2] failed at (epoch s), ARGV[3] fields (JSON list of name, value),
# ARGV[4] the counter's field.
_ADD = """
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[3])))
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
return 1
"""

# KEYS[1] the entry's hash, KEYS[2] the index, KEYS[3] the events queue.
# ARGV[1] id, ARGV[2] the task message, ARGV[3] how long a replayed entry is kept (s),
# ARGV[4] now (epoch s).
# Queued and taken off the list in one step: a replay is never lost nor doubled.
_REPLAY = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then return 0 end
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'replays', 1)
redis.call('HSET', KEYS[1], 'replayed_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS[1] the index. ARGV[1] the hash key prefix.
_PURGE = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. id) end
redis.call('DEL', KEYS[1])
return #ids
"""


@dataclass(frozen=True, slots=True)
class InboundDeadLetter:
    """One event that could not be applied; `body` is None when it could not be kept."""

    id: str
    event_type: str
    session: str
    error: str
    attempts: int
    failed_at: float
    replays: int
    body: Any

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> InboundDeadLetter:
        raw = data.get("body", "")
        return cls(id=data["id"], event_type=data.get("event_type", ""),
                   session=data.get("session", ""), error=data.get("error", ""),
                   attempts=int(data.get("attempts", 0)),
                   failed_at=float(data.get("failed_at", 0)),
                   replays=int(data.get("replays", 0)),
                   body=json.loads(raw) if raw else None)

    def as_dict(self, *, with_body: bool = True) -> dict[str, Any]:
        """For an API answer; `with_body=False` for places that must not show the text."""
        answer: dict[str, Any] = {
            "id": self.id, "event_type": self.event_type, "session": self.session,
            "error": self.error, "attempts": self.attempts, "failed_at": self.failed_at,
            "replays": self.replays}
        if with_body:
            answer["body"] = self.body
        return answer


class InboundDeadLetters:
    """Keep, list, replay and purge events that could not be applied."""

    def __init__(self, client: redis.Redis, *, retention: int, counters_key: str) -> None:
        """`counters_key`: the metrics' counters hash, which counts every event kept."""
        self.redis = client
        self.retention = retention
        self.counters_key = counters_key
        self._add = client.register_script(_ADD)
        self._replay = client.register_script(_REPLAY)
        self._purge = client.register_script(_PURGE)

    @staticmethod
    def key(letter_id: str) -> str:
        return f"{PREFIX}in-dead:{letter_id}"

    def add(self, letter_id: str, body: Any, error: str, *, attempts: int) -> None:
        """Keep `body` (an event as it was queued) with why it failed."""
        envelope = body if isinstance(body, dict) else {}
        fields = {
            "id": letter_id,
            "event_type": _label(envelope.get("eventType")),
            "session": _label(envelope.get("sessionId")),
            "error": error[:ERROR_LIMIT], "attempts": attempts, "failed_at": time.time(),
            "body": _keepable(body),
        }
        flat = [str(item) for pair in fields.items() for item in pair]
        self._add(keys=[self.key(letter_id), INBOUND_DEAD_INDEX, self.counters_key],
                  args=[letter_id, repr(fields["failed_at"]), json.dumps(flat),
                        INBOUND_DEAD_COUNTER])

    def get(self, letter_id: str) -> InboundDeadLetter | None:
        data = self.redis.hgetall(self.key(letter_id))
        return InboundDeadLetter.from_hash(data) if "id" in data else None

    def list(self, limit: int = 100, offset: int = 0) -> list[InboundDeadLetter]:
        """Newest first."""
        ids = self.redis.zrevrange(INBOUND_DEAD_INDEX, offset, offset + limit - 1)
        pipe = self.redis.pipeline(transaction=False)
        for letter_id in ids:
            pipe.hgetall(self.key(letter_id))
        return [InboundDeadLetter.from_hash(data) for data in pipe.execute() if "id" in data]

    def count(self) -> int:
        return self.count_in(self.redis)

    @staticmethod
    def count_in(client: redis.Redis) -> int:
        return int(client.zcard(INBOUND_DEAD_INDEX))

    def replay(self, letter_id: str, prepare: PrepareReplay) -> InboundDeadLetter:
        """Put the event back on its queue, under its own id, with a fresh retry budget."""
        letter = self.get(letter_id)
        if letter is None or self.redis.zscore(INBOUND_DEAD_INDEX, letter_id) is None:
            raise NotADeadLetter(f"event {letter_id} is not an inbound dead letter")
        if letter.body is None:
            raise NotADeadLetter(f"event {letter_id} has no body to replay")
        message = prepare(letter_id, letter.body)
        replayed = self._replay(keys=[self.key(letter_id), INBOUND_DEAD_INDEX, message.queue],
                                args=[letter_id, message.payload, self.retention,
                                      repr(time.time())])
        if not replayed:
            raise NotADeadLetter(f"event {letter_id} is not an inbound dead letter")
        return self.get(letter_id) or letter

    def purge(self) -> int:
        """Delete every inbound dead letter; returns how many went."""
        return int(self._purge(keys=[INBOUND_DEAD_INDEX], args=[f"{PREFIX}in-dead:"]))


def _label(value: Any) -> str:
    """A short printable label of an envelope field, whatever it holds."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:120]


def _keepable(body: Any) -> str:
    """The body as JSON text that Redis and any reader take (odd strings escaped); empty
    when it cannot be written at all (nested too deep for the encoder)."""
    try:
        return json.dumps(body, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        return ""
