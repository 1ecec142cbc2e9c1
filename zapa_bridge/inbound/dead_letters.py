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
from dataclasses import dataclass
from typing import Any

import redis

from zapa_bridge.errors import NotADeadLetter
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.publisher import Publisher
from zapa_bridge.store.replies import text_hash, texts

INBOUND_DEAD_COUNTER = "inbound_dead_letters"
ERROR_LIMIT = 500
PURGE_BATCH = 500  # ids per purge call, each with its key in KEYS

_ADD = scripts.read(__package__, "dead_letters.add.lua")

_REPLAY = scripts.read(__package__, "dead_letters.replay.lua")

_PURGE = scripts.read(__package__, "dead_letters.purge.lua")


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

    def __init__(self, client: redis.Redis, publisher: Publisher, *, retention: int,
                 counters_key: str) -> None:
        """`counters_key`: the metrics' counters hash, which counts every event kept."""
        self.redis = client
        self.publisher = publisher
        self.retention = retention
        self.counters_key = counters_key
        self._add = client.register_script(_ADD)
        self._replay = client.register_script(_REPLAY)
        self._purge = client.register_script(_PURGE)

    @staticmethod
    def key(letter_id: str) -> str:
        return keys.inbound_dead(letter_id)

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
        self._add(keys=[self.key(letter_id), keys.INBOUND_DEAD, self.counters_key],
                  args=[letter_id, repr(fields["failed_at"]), json.dumps(flat),
                        INBOUND_DEAD_COUNTER])

    def get(self, letter_id: str) -> InboundDeadLetter | None:
        data = text_hash(self.redis.hgetall(self.key(letter_id)))
        return InboundDeadLetter.from_hash(data) if "id" in data else None

    def list(self, limit: int = 100, offset: int = 0) -> list[InboundDeadLetter]:
        """Newest first."""
        ids = texts(self.redis.zrevrange(keys.INBOUND_DEAD, offset, offset + limit - 1))
        pipe = self.redis.pipeline(transaction=False)
        for letter_id in ids:
            pipe.hgetall(self.key(letter_id))
        return [InboundDeadLetter.from_hash(data) for data in pipe.execute() if "id" in data]

    def count(self) -> int:
        return self.count_in(self.redis)

    @staticmethod
    def count_in(client: redis.Redis) -> int:
        return int(client.zcard(keys.INBOUND_DEAD))

    def replay(self, letter_id: str) -> InboundDeadLetter:
        """Put the event back on its queue, under its own id, with a fresh retry budget."""
        letter = self.get(letter_id)
        if letter is None or self.redis.zscore(keys.INBOUND_DEAD, letter_id) is None:
            raise NotADeadLetter(f"event {letter_id} is not an inbound dead letter")
        if letter.body is None:
            raise NotADeadLetter(f"event {letter_id} has no body to replay")
        message = self.publisher.prepare_event(letter.body, task_id=letter_id,
                                               kwargsrepr=repr({"replay": letter_id}))
        replayed = self._replay(keys=[self.key(letter_id), keys.INBOUND_DEAD, message.queue],
                                args=[letter_id, message.payload, self.retention,
                                      repr(time.time())])
        if not replayed:
            raise NotADeadLetter(f"event {letter_id} is not an inbound dead letter")
        return self.get(letter_id) or letter

    def purge(self) -> int:
        """Delete every inbound dead letter; returns how many went."""
        ids = texts(self.redis.zrange(keys.INBOUND_DEAD, 0, -1))
        removed = 0
        for start in range(0, len(ids), PURGE_BATCH):
            batch = ids[start:start + PURGE_BATCH]
            removed += int(self._purge(keys=[keys.INBOUND_DEAD, *map(self.key, batch)],
                                       args=batch))
        return removed


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
