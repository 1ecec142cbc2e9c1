"""Recovering the events zapw emitted but never posted to us, from its `GET /events` list.

zapw drops a webhook after three failed attempts, and posts nothing at all when
ENABLE_WEBHOOK is unset or WEBHOOK_URL is wrong; it still keeps its last 10 events. One
poller at a time (a Redis lock) reads that list and offers each event, once it has been in
the list for the grace period, to the same intake call as a webhook: the same dedupe key
makes an event that did arrive a `duplicate`, and a later webhook for one recovered here a
free repeat.

What the intake answers is also the evidence of delivery: `duplicate` means the webhook came,
`accepted` means it did not (a recovered event). The newest event offered decides: one
recovered marks webhooks as not posting (`DeliveryState`), one found delivered clears it.

Session events are keyed for deduplication by their timestamp, which differs between the
list and the webhook, so for them the session registry says whether the webhook came: a
state of that status recorded near that time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
from redis.exceptions import LockError
from redis.typing import EncodableT, FieldT

from zapa_bridge.bridge.client import BridgeClient, StoredEvent
from zapa_bridge.bridge.sessions import SessionRegistry
from zapa_bridge.errors import InvalidEvent
from zapa_bridge.inbound.events import SESSION_EVENTS, WebhookEvent, parse_event
from zapa_bridge.inbound.handlers import SESSION_STATUS_BY_EVENT
from zapa_bridge.inbound.intake import Intake
from zapa_bridge.logs import line
from zapa_bridge.store import keys
from zapa_bridge.store.replies import text_hash

log = logging.getLogger("zapa.recovery")

NOT_POSTING = "zapw is not posting webhooks here: check ENABLE_WEBHOOK and WEBHOOK_URL"
DONE = "done"  # a sighting offered to the intake already
# How far a session event's stored timestamp may lie after its webhook's (zapw takes them a
# few ms apart) for the registry's state to count as that webhook.
SESSION_EVENT_SKEW_MS = 2000
# The lock outlives the longest poll: one bridge call and ten intake calls.
LOCK_MARGIN = 30.0


@dataclass(slots=True)
class PollReport:
    """What one poll found: events listed, still in their grace, delivered, recovered."""

    listed: int = 0
    waiting: int = 0
    arrived: int = 0
    recovered: Counter[str] = field(default_factory=Counter)  # by session
    # Whether the newest event offered had come as a webhook; None: no evidence either way.
    newest_arrived: bool | None = None

    def as_dict(self) -> dict[str, object]:
        return {"listed": self.listed, "waiting": self.waiting, "arrived": self.arrived,
                "recovered": dict(self.recovered)}


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """When recovery last found a webhook missing, and last found one delivered."""

    missed_at: float | None = None
    arrived_at: float | None = None

    @property
    def not_posting(self) -> bool:
        return self.missed_at is not None and self.missed_at > (self.arrived_at or 0.0)

    @classmethod
    def read(cls, client: redis.Redis) -> DeliveryState:
        raw = text_hash(client.hgetall(keys.EVENTS_DELIVERY))
        return cls(*(float(raw[name]) if name in raw else None
                     for name in ("missed_at", "arrived_at")))


def recovered_counts(client: redis.Redis) -> dict[str, int]:
    """Events recovered so far, by session."""
    return {session: int(count) for session, count in
            text_hash(client.hgetall(keys.METRICS_RECOVERED)).items()}


class EventRecovery:
    def __init__(self, client: redis.Redis, bridge: BridgeClient, intake: Intake,
                 sessions: SessionRegistry, *, grace: float, too_old: float) -> None:
        """`grace`: seconds an event stays listed before it is offered; `too_old`: seconds
        after which an event first seen here is left alone (its dedupe key may be gone)."""
        self.redis = client
        self.bridge = bridge
        self.intake = intake
        self.sessions = sessions
        self.grace = grace
        self.too_old = too_old
        self.lock_timeout = bridge.connect_timeout + bridge.timeout + LOCK_MARGIN

    def poll(self) -> PollReport | None:
        """One poll; None when another poller holds the lock. Bridge errors propagate."""
        lock = self.redis.lock(keys.EVENTS_POLL_LOCK, timeout=self.lock_timeout)
        if not lock.acquire(blocking=False):
            return None
        try:
            return self._poll()
        finally:
            with contextlib.suppress(LockError, redis.RedisError):
                lock.release()

    def _poll(self) -> PollReport:
        listed = self.bridge.recent_events()
        now = time.time()
        before = text_hash(self.redis.hgetall(keys.EVENTS_SIGHTINGS))
        # Only what the list holds now is kept: an event that left it never comes back.
        after = {_sighting(stored): before.get(_sighting(stored), repr(now))
                 for stored in listed}
        report = PollReport(listed=len(listed))
        try:
            for stored in reversed(listed):  # oldest first, as they happened
                sighting = _sighting(stored)
                if after[sighting] == DONE:
                    continue
                if now - float(after[sighting]) < self.grace:
                    report.waiting += 1
                    continue
                self._offer(stored, now, report)
                after[sighting] = DONE
        finally:
            with contextlib.suppress(redis.RedisError):
                self._save(after, report, now)
        return report

    def _offer(self, stored: StoredEvent, now: float, report: PollReport) -> None:
        try:
            event = parse_event(stored.envelope())
        except InvalidEvent as exc:
            log.warning(line("events.unreadable", event_id=stored.id, field=exc.field))
            return
        if event.timestamp is not None and now * 1000 - event.timestamp > self.too_old * 1000:
            return
        if event.event_type in SESSION_EVENTS and self._session_event_arrived(event):
            outcome = "duplicate"
        else:
            outcome = self.intake.accept(event, spool=False)
        if outcome == "duplicate":
            report.arrived += 1
            report.newest_arrived = True
        elif outcome == "accepted":
            report.recovered[event.session] += 1
            report.newest_arrived = False
            log.warning(line("webhook.recovered", event_type=event.stats_type,
                             session=event.session, event_id=stored.id))

    def _session_event_arrived(self, event: WebhookEvent) -> bool:
        status = SESSION_STATUS_BY_EVENT.get(event.event_type, event.data.get("status"))
        state = self.sessions.get(event.session)
        if state is None or state.event_at is None or event.timestamp is None:
            return False
        return state.status == status and \
            state.event_at >= event.timestamp - SESSION_EVENT_SKEW_MS

    def _save(self, after: dict[str, str], report: PollReport, now: float) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.EVENTS_SIGHTINGS)
        if after:
            # Annotated: redis-py's `mapping` has an invariant key type.
            sightings: dict[FieldT, EncodableT] = {key: value for key, value in after.items()}
            pipe.hset(keys.EVENTS_SIGHTINGS, mapping=sightings)
        for session, count in report.recovered.items():
            pipe.hincrby(keys.METRICS_RECOVERED, session, count)
        if report.newest_arrived is not None:
            field_name = "arrived_at" if report.newest_arrived else "missed_at"
            pipe.hset(keys.EVENTS_DELIVERY, field_name, repr(now))
        pipe.execute()
        if report.newest_arrived is False:
            log.warning(line("webhooks.not_posting", recovered=sum(report.recovered.values())))


def _sighting(stored: StoredEvent) -> str:
    """An event of the list, told apart across zapw restarts (which start ids again)."""
    return json.dumps([stored.id, stored.timestamp], separators=(",", ":"))
