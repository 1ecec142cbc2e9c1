"""Bursts: the messages a sender writes within a moment of each other, handed on as one.

With ZAPA_INBOUND_COALESCE on, the webhook intake puts each `message.received` it takes in
into its sender's bursts (one per session and sender) in the call that deduplicates and
records it, instead of handing it to ZAPA_INBOUND_TASK at once. A burst closes
ZAPA_INBOUND_COALESCE seconds after its latest message, and no later than
ZAPA_INBOUND_COALESCE_MAX seconds after its first; a group message or an unsupported type
closes the sender's open burst and goes on alone, behind it. Every worker's due mover hands
closed bursts on (`move_due`): pushing the burst's one task message and dropping its
messages is one atomic step that checks the burst is still whole and still due, so it is
handed on once, by one worker, and a worker that dies before that step leaves it for the
next mover.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

from zapa_bridge.inbound.messages import UNSUPPORTED, InboundMessage
from zapa_bridge.inbound.routing import InboundRouter
from zapa_bridge.logs import line
from zapa_bridge.redaction import mask_phone
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.replies import texts

log = logging.getLogger("zapa.bursts")

BATCH = 100
BURSTS_COUNTER = "inbound_bursts"
COALESCED_COUNTER = "inbound_coalesced"

# The function that puts a message into its sender's bursts, for the webhook intake's script
# (and `burst_of`, which the hand-on uses too).
LUA_JOIN = scripts.read(__package__, "bursts.join.lua")
_HAND_ON = LUA_JOIN + scripts.read(__package__, "bursts.hand_on.lua")

# What `message["burst"]` keeps of each message of a burst.
BURST_FIELDS = ("id", "message_id", "timestamp", "type", "text", "caption", "has_media",
                "file_name", "location", "contact")


def joinable(message: InboundMessage) -> bool:
    """A message that may join a burst: neither a group's nor of an unsupported type."""
    return not message.is_group and message.type != UNSUPPORTED


def combined(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The `message` keyword of a burst (its messages in order, as recorded): the last
    message, with `burst` (each message's BURST_FIELDS) and `text` (the texts, or the
    captions of media without one, joined by newlines). A burst of one is that message."""
    if len(messages) == 1:
        return messages[0]
    joined = [m.get("text") if m.get("text") is not None else m.get("caption")
              for m in messages]
    return {**messages[-1],
            "burst": [{field: m.get(field) for field in BURST_FIELDS} for m in messages],
            "text": "\n".join(str(part) for part in joined if part is not None)}


class Bursts:
    """The senders' bursts: the intake's arguments to join one, the mover that hands them on."""

    def __init__(self, client: redis.Redis, router: InboundRouter, *, window: float,
                 cap: float) -> None:
        self.redis = client
        self.router = router
        self.window = window
        self.cap = cap
        self._hand_on = client.register_script(_HAND_ON)

    def call_parts(self, message: InboundMessage,
                   now: float) -> tuple[list[str], list[str]]:
        """The KEYS and ARGV of `join_burst` as intake.burst.lua takes them (KEYS[6..8],
        ARGV[13..17])."""
        return ([keys.burst(message.session, message.sender),
                 keys.burst_state(message.session, message.sender), keys.BURSTS_DUE],
                [keys.burst_sender(message.session, message.sender), repr(now),
                 repr(self.window), repr(self.cap), "1" if joinable(message) else "0"])

    def move_due(self, now: float | None = None) -> int:
        """Hand on the bursts that are closed; returns how many were handed on."""
        now = time.time() if now is None else now
        handed = 0
        while True:
            members = texts(self.redis.zrangebyscore(keys.BURSTS_DUE, "-inf", repr(now),
                                                     start=0, num=BATCH))
            moved = sum(self._hand_on_oldest(member, now) for member in members)
            handed += moved
            # Again while bursts went: a sender's next burst may be due at once (one that a
            # group message or an unsupported type closed). A round that hands nothing on
            # (bursts another worker took, or that a message just joined) ends it.
            if not moved:
                return handed

    def waiting(self) -> int:
        """How many senders have messages waiting in a burst."""
        return int(self.redis.zcard(keys.BURSTS_DUE))

    def _hand_on_oldest(self, member: str, now: float) -> int:
        session, sender = keys.burst_sender_parts(member)
        list_key = keys.burst(session, sender)
        entries = [json.loads(raw) for raw in texts(self.redis.lrange(list_key, 0, -1))]
        burst = entries[0]["b"] if entries else ""
        size = 0
        while size < len(entries) and entries[size]["b"] == burst:
            size += 1
        messages = [entry["message"] for entry in entries[:size]]
        prepared = self.router.route_fields(combined(messages)) if messages else None
        payload = prepared.message.payload if prepared else ""
        queue = prepared.message.queue if prepared else list_key
        handed = self._hand_on(
            keys=[keys.BURSTS_DUE, list_key, keys.burst_state(session, sender), queue,
                  keys.METRICS_COUNTERS],
            args=[member, repr(now), burst, size, payload, "1" if size > 1 else "0",
                  BURSTS_COUNTER, COALESCED_COUNTER])
        if handed and size > 1:
            log.info(line("inbound.burst", session=session, sender=mask_phone(sender),
                          messages=size, routed_to=prepared.task if prepared else "-"))
        return int(handed)
