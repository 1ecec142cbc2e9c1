"""Crash recovery in seconds: what a dead worker process was sending goes back on the queues.

Every worker process beats: a liveness key of a few seconds' TTL (`keys.alive`,
`ZAPA_WORKER_ALIVE_TTL`), refreshed every `BEAT_EVERY` s, and its name in `zapa:owners`. A
claim records the process that holds the message (the record's `owner`). Once a tick, one
process (under `CRASH_WATCH_LOCK`: any worker, or the reconciliation) looks for processes
whose liveness key expired, and:

- drops the lease of every record a dead process was `sending` and publishes it again under
  its id: the next claim is granted at once and counted as a possible duplicate, as after
  any interrupted attempt, and the message's conversation goes on behind it;
- for `lost_after` after each death, queues again the `queued` messages pending since before
  it that are nowhere else (taken by the dead process as the next of a conversation, or
  popped by kombu and never recorded), as the lost-message sweep would after `lost_after`,
  and those a worker took before the death and still holds unacknowledged unclaimed (the
  dead process may be that worker, and kombu would redeliver them only after the
  visibility timeout).

Each step is safe to repeat, and against kombu's own redelivery after the visibility
timeout: the record lets one send through, and a message already `sent` is never sent again.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field

import redis

from zapa_bridge.logs import line
from zapa_bridge.outbound.dispatch import Dispatcher
from zapa_bridge.outbound.recovery import LostMessageSweeper
from zapa_bridge.outbound.status_store import HISTORY_LIMIT, MessageStatus, StatusStore
from zapa_bridge.store import keys, scripts
from zapa_bridge.store.replies import text_set, texts

log = logging.getLogger("zapa.crash_recovery")

BEAT_EVERY = 1.0  # s between beats of a worker process (and between watches)
# How long a `queued` message pending since before a death must have been found nowhere.
GRACE = 3 * BEAT_EVERY
SCAN_BATCH = 500

_RELEASE = scripts.read(__package__, "crash_recovery.release.lua")

_owner: tuple[int, str] | None = None


def process_owner() -> str:
    """This process's name as a claim records it: host, pid and a random part (a pid is
    reused after a restart)."""
    global _owner
    if _owner is None or _owner[0] != os.getpid():
        _owner = (os.getpid(), f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}")
    return _owner[1]


@dataclass(frozen=True, slots=True)
class Recovered:
    """What one watch found and did."""

    dead: list[str] = field(default_factory=list)  # processes found dead
    released: list[str] = field(default_factory=list)  # records `sending` let go of
    requeued: list[str] = field(default_factory=list)  # messages queued again by id

    def __bool__(self) -> bool:
        return bool(self.dead or self.released or self.requeued)


class CrashRecovery:
    def __init__(self, store: StatusStore, dispatcher: Dispatcher,
                 sweeper: LostMessageSweeper, *, owner: str, lost_after: float,
                 alive_ttl: int) -> None:
        """`alive_ttl`: how long a beat lasts; a process silent this long is taken for
        dead. Well above a beat, so a process busy for a few seconds (a slow Redis call, a
        pause) is not."""
        self.store = store
        self.redis: redis.Redis = store.redis
        self.dispatcher = dispatcher
        self.sweeper = sweeper
        self.owner = owner
        self.lost_after = lost_after
        self.alive_ttl = alive_ttl
        self._release = self.redis.register_script(_RELEASE)

    def beat(self) -> None:
        """This process is alive (for `alive_ttl` s)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.alive(self.owner), "1", ex=self.alive_ttl)
        pipe.sadd(keys.OWNERS, self.owner)
        pipe.execute()

    def watch(self, now: float | None = None) -> Recovered | None:
        """One tick of the watch; None when another process has this tick."""
        now = now or time.time()
        if not self.redis.set(keys.CRASH_WATCH_LOCK, self.owner, nx=True,
                              px=int(BEAT_EVERY * 1000)):
            return None
        owners = sorted(text_set(self.redis.smembers(keys.OWNERS)))
        beats = self.redis.mget([keys.alive(owner) for owner in owners]) if owners else []
        dead = [owner for owner, beat in zip(owners, beats, strict=True) if beat is None]
        released: list[str] = []
        requeued: list[str] = []
        if dead:
            self.redis.set(keys.CRASH_SEEN, repr(now), ex=max(1, int(self.lost_after)))
            released = self._release_sending(set(dead), now)
            requeued = [message_id for message_id in released
                        if self._requeue(message_id, now)]
        seen = self.redis.get(keys.CRASH_SEEN)
        if seen is not None:
            requeued += self.sweeper.sweep(now, lost_after=min(GRACE, self.lost_after),
                                           pending_before=float(seen),
                                           statuses=(MessageStatus.QUEUED,),
                                           taken_before=float(seen))
        if dead:
            self.redis.srem(keys.OWNERS, *dead)
        done = Recovered(dead, released, requeued)
        if done:
            log.warning(line("crash.recovered", dead=len(dead), released=len(released),
                             requeued=len(requeued)))
        return done

    def _release_sending(self, dead: set[str], now: float) -> list[str]:
        """Let go of the records `sending` under a dead process, among the pending ones."""
        released = []
        for message_id, owner in self._sending(dead):
            if self._release(keys=[self.store.key(message_id), keys.alive(owner)],
                             args=[owner, MessageStatus.SENDING, repr(now), HISTORY_LIMIT]):
                released.append(message_id)
        return released

    def _sending(self, dead: set[str]) -> list[tuple[str, str]]:
        """(message id, owner) of the pending records `sending` under an owner in `dead`."""
        found = []
        start = 0
        while True:
            ids = texts(self.redis.zrange(keys.PENDING, start, start + SCAN_BATCH - 1))
            pipe = self.redis.pipeline(transaction=False)
            for message_id in ids:
                pipe.hmget(self.store.key(message_id), "status", "owner")
            for message_id, (status, owner) in zip(ids, pipe.execute(), strict=True):
                if status == MessageStatus.SENDING and owner in dead:
                    found.append((message_id, str(owner)))
            if len(ids) < SCAN_BATCH:
                return found
            start += SCAN_BATCH

    def _requeue(self, message_id: str, now: float) -> bool:
        record = self.store.get(message_id)
        if record is None or record.status is not MessageStatus.SENDING:
            return False
        if not self.dispatcher.requeue(message_id, record.message):
            return False
        self.redis.zadd(keys.PENDING, {message_id: now})
        return True
