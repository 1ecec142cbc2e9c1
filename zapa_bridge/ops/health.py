"""Health of every component, each `healthy`, `degraded` or `unhealthy` with a reason.

Checks run on a schedule (Celery beat) and the snapshot is stored in Redis, so reading
health is one GET and says when it was taken. The overall status is the worst component's.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.config import Settings
from zapa_bridge.errors import BridgeError
from zapa_bridge.inbound.dead_letters import InboundDeadLetters
from zapa_bridge.inbound.recovery import NOT_POSTING, DeliveryState, recovered_counts
from zapa_bridge.outbound.dead_letters import DeadLetters
from zapa_bridge.outbound.holds import HeldMessages
from zapa_bridge.outbound.pacing import Pacing
from zapa_bridge.redaction import redact_url
from zapa_bridge.store import keys
from zapa_bridge.store.broker import BrokerLayout
from zapa_bridge.store.replies import optional_text
from zapa_bridge.wording import counted

# Clock and timing noise between the bridge's uptime and ours, in seconds.
RESTART_TOLERANCE = 5.0


class Health(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


SEVERITY = {Health.HEALTHY: 0, Health.DEGRADED: 1, Health.UNHEALTHY: 2}


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    status: Health
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)
    last_check: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {"status": str(self.status), "message": self.message,
                "last_check": self.last_check, "metadata": self.metadata}


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    components: dict[str, ComponentHealth]
    taken_at: float

    @property
    def overall(self) -> Health:
        worst = max((c.status for c in self.components.values()),
                    key=SEVERITY.__getitem__, default=Health.HEALTHY)
        return Health(worst)

    def as_dict(self) -> dict[str, Any]:
        return {"overall_status": str(self.overall), "taken_at": self.taken_at,
                "components": {name: c.as_dict() for name, c in self.components.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthSnapshot:
        components = {
            name: ComponentHealth(Health(c["status"]), c["message"], c.get("metadata", {}),
                                  c["last_check"])
            for name, c in data["components"].items()
        }
        return cls(components, data["taken_at"])


def _grade(value: float, warn: float, critical: float) -> Health:
    if value >= critical:
        return Health.UNHEALTHY
    if value >= warn:
        return Health.DEGRADED
    return Health.HEALTHY


class HealthChecker:
    """Runs every check against the real components and keeps the latest snapshot."""

    def __init__(self, settings: Settings, client: redis.Redis, bridge: BridgeClient,
                 broker: BrokerLayout, queues: list[str], *,
                 beat_last_run: Callable[[], float | None]) -> None:
        self.settings = settings
        self.redis = client
        self.bridge = bridge
        self.broker = broker
        self.queues = list(queues)
        self.beat_last_run = beat_last_run
        self.bridge_restarted = False

    def run(self) -> HealthSnapshot:
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            down = ComponentHealth(Health.UNHEALTHY, f"redis unreachable: {type(exc).__name__}")
            return HealthSnapshot({"redis": down, "bridge": self.check_bridge()}, time.time())
        components = {
            "bridge": self.check_bridge(),
            "redis": self.check_redis(),
            "queues": self.check_queues(),
            "workers": self.check_workers(),
            "beat": self.check_beat(),
            "held_messages": self.check_held(),
            "dead_letters": self.check_dead_letters(),
            "inbound_dead_letters": self.check_inbound_dead_letters(),
            "webhooks": self.check_webhooks(),
            "pacing": self.check_pacing(),
        }
        snapshot = HealthSnapshot(components, time.time())
        self.redis.set(keys.HEALTH_SNAPSHOT, json.dumps(snapshot.as_dict()))
        return snapshot

    def latest(self) -> HealthSnapshot | None:
        raw = self.redis.get(keys.HEALTH_SNAPSHOT)
        return HealthSnapshot.from_dict(json.loads(raw)) if raw else None

    def check_bridge(self) -> ComponentHealth:
        self.bridge_restarted = False
        try:
            health = self.bridge.health()
            sessions = self.bridge.list_sessions()
        except BridgeError as exc:
            return ComponentHealth(Health.UNHEALTHY, exc.message,
                                   {"url": redact_url(self.settings.zapw_base_url)})
        self.bridge_restarted = self._uptime_went_down(health.uptime)
        connected = [s.id for s in sessions if s.connected]
        metadata = {"url": redact_url(self.settings.zapw_base_url), "uptime": health.uptime,
                    "sessions": len(sessions), "connected": len(connected),
                    "restarted": self.bridge_restarted,
                    "not_connected": sorted(s.id for s in sessions if not s.connected)}
        if not sessions:
            return ComponentHealth(Health.DEGRADED, "bridge up, but it has no sessions", metadata)
        if len(connected) < len(sessions):
            return ComponentHealth(Health.DEGRADED, f"{len(connected)} of {len(sessions)} "
                                                    "sessions connected", metadata)
        return ComponentHealth(Health.HEALTHY, f"all {len(sessions)} sessions connected",
                               metadata)

    def _uptime_went_down(self, uptime: float) -> bool:
        """A restart shows as uptime lower than at the last check, or, when the new process
        has already been up longer than that, as a later start time (now - uptime)."""
        seen = {"uptime": uptime, "started": time.time() - uptime}
        try:
            raw = self.redis.getset(keys.HEALTH_BRIDGE_STARTED, json.dumps(seen))
        except redis.RedisError:
            return False
        if raw is None:
            return False
        previous: dict[str, float] = json.loads(raw)
        return (uptime < previous["uptime"]
                or seen["started"] > previous["started"] + RESTART_TOLERANCE)

    def check_redis(self) -> ComponentHealth:
        info = self.redis.info("memory")
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        metadata = {"used_memory": used, "maxmemory": limit,
                    "maxmemory_policy": info.get("maxmemory_policy")}
        if limit and used / limit >= 0.9:
            return ComponentHealth(Health.DEGRADED, f"memory {used / limit:.0%} of maxmemory",
                                   metadata)
        return ComponentHealth(Health.HEALTHY, "reachable", metadata)

    def check_queues(self) -> ComponentHealth:
        s = self.settings
        stats = self.broker.queue_stats(self.redis, self.queues)
        worst, reasons = Health.HEALTHY, []
        for name, queue in stats.items():
            grade = max(_grade(queue.depth, s.queue_depth_warn, s.queue_depth_critical),
                        _grade(queue.oldest_age or 0, s.queue_age_warn, s.queue_age_critical),
                        key=SEVERITY.__getitem__)
            if grade is not Health.HEALTHY:
                reasons.append(f"{name}: {queue.depth} waiting, oldest "
                               f"{queue.oldest_age or 0:.0f} s")
            worst = max(worst, grade, key=SEVERITY.__getitem__)
        metadata = {name: queue.as_dict() for name, queue in stats.items()}
        return ComponentHealth(worst, "; ".join(reasons) or "queues flowing", metadata)

    def check_workers(self) -> ComponentHealth:
        workers = [json.loads(raw) for raw in
                   filter(None, (optional_text(self.redis.get(key)) for key in
                                 self.redis.scan_iter(keys.WORKERS_PATTERN, count=100)))]
        metadata = {"workers": sorted(worker["hostname"] for worker in workers)}
        if not workers:
            return ComponentHealth(Health.UNHEALTHY, "no worker heartbeat", metadata)
        return ComponentHealth(Health.HEALTHY, f"{counted(len(workers), 'worker')} alive", metadata)

    def check_beat(self) -> ComponentHealth:
        last = self.beat_last_run()
        interval = self.settings.health_interval
        if last is None:
            return ComponentHealth(Health.UNHEALTHY, "beat has not run", {})
        age = time.time() - last
        metadata = {"last_run": last, "age": round(age, 1)}
        if age > 3 * interval:
            return ComponentHealth(Health.UNHEALTHY, f"beat last ran {age:.0f} s ago", metadata)
        return ComponentHealth(Health.HEALTHY, f"beat ran {age:.0f} s ago", metadata)

    def check_held(self) -> ComponentHealth:
        counts = HeldMessages(self.redis).counts()
        total = sum(counts.values())
        if total:
            why = "offline sessions or daily limits" \
                if Pacing.from_settings(self.redis, self.settings).at_limit() \
                else "offline sessions"
            return ComponentHealth(Health.DEGRADED, f"{counted(total, 'message')} held for {why}",
                                   {"per_session": counts})
        return ComponentHealth(Health.HEALTHY, "no held messages", {"per_session": {}})

    def check_pacing(self) -> ComponentHealth:
        """Which sessions reached their daily limit today: their messages wait, held, for
        the next UTC day."""
        pacing = Pacing.from_settings(self.redis, self.settings)
        if not pacing.on:
            return ComponentHealth(Health.HEALTHY, "pacing off", {"at_limit": {}})
        at_limit = pacing.at_limit()
        metadata = {"at_limit": at_limit}
        if at_limit:
            names = ", ".join(sorted(at_limit))
            return ComponentHealth(Health.DEGRADED, f"daily limit reached by {names}: their "
                                   "messages wait for the next UTC day", metadata)
        return ComponentHealth(Health.HEALTHY, "no session at its daily limit", metadata)

    def check_dead_letters(self) -> ComponentHealth:
        count = DeadLetters.count_in(self.redis)
        if count:
            return ComponentHealth(Health.DEGRADED, f"{counted(count, 'dead letter')} to review",
                                   {"count": count})
        return ComponentHealth(Health.HEALTHY, "no dead letters", {"count": 0})

    def check_inbound_dead_letters(self) -> ComponentHealth:
        count = InboundDeadLetters.count_in(self.redis)
        if count:
            return ComponentHealth(Health.DEGRADED, f"{counted(count, 'zapw event')} could not be "
                                                    "applied: review them", {"count": count})
        return ComponentHealth(Health.HEALTHY, "every zapw event applied", {"count": 0})

    def check_webhooks(self) -> ComponentHealth:
        """Whether zapw posts its events here, as recovery from GET /events last found."""
        state = DeliveryState.read(self.redis)
        metadata = {"missed_at": state.missed_at, "arrived_at": state.arrived_at,
                    "recovered": sum(recovered_counts(self.redis).values())}
        if state.not_posting:
            return ComponentHealth(Health.DEGRADED, NOT_POSTING, metadata)
        if state.arrived_at is None:
            return ComponentHealth(Health.HEALTHY, "no event of zapw's list checked yet",
                                   metadata)
        return ComponentHealth(Health.HEALTHY, "webhooks arriving", metadata)
