"""Prometheus metrics, counted in Redis so every process on every machine adds to the same
numbers: gunicorn's workers, Celery's workers and their threads, without a shared
multiprocess directory. `/metrics` renders them, plus gauges read live from Redis.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from zapa_bridge.inbound.bursts import BURSTS_COUNTER, COALESCED_COUNTER
from zapa_bridge.inbound.dead_letters import INBOUND_DEAD_COUNTER, InboundDeadLetters
from zapa_bridge.inbound.events import KNOWN_EVENTS, OTHER_EVENTS
from zapa_bridge.inbound.recovery import recovered_counts
from zapa_bridge.outbound.dead_letters import DeadLetters
from zapa_bridge.outbound.holds import HeldMessages
from zapa_bridge.outbound.status_store import Increment
from zapa_bridge.store import keys
from zapa_bridge.store.broker import BrokerLayout
from zapa_bridge.store.replies import text_hash

# Every label set of /metrics is bounded: a label taken from data (a session id) keeps its
# largest values and sums the rest under OTHER_LABEL.
MAX_LABEL_VALUES = 100
OTHER_LABEL = "other"
WEBHOOK_OUTCOMES = frozenset({"accepted", "duplicate", "ignored"})

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

SEND_OUTCOMES = "sends"
RETRIES = "retries"
POSSIBLE_DUPLICATES = "possible_duplicates"
RATE_LIMITED = "rate_limited"
PACED = "paced"
DAILY_LIMIT_HELD = "daily_limit_held"

# The counters of METRICS_COUNTERS that are one number each: (family, help, field).
PLAIN_COUNTERS = (
    ("zapa_send_retries", "Sends scheduled for another try", RETRIES),
    ("zapa_possible_duplicate_sends", "Sends repeated after a crash left their outcome unknown",
     POSSIBLE_DUPLICATES),
    ("zapa_rate_limited_sends",
     "Sends put off because their session's rate limit had no slot left", RATE_LIMITED),
    ("zapa_paced_sends",
     "Sends put off because their recipient had its ZAPA_RECIPIENT_RATE_LIMIT", PACED),
    ("zapa_daily_limit_holds",
     "Messages held until the next UTC day: their session had its daily limit",
     DAILY_LIMIT_HELD),
    ("zapa_inbound_dead_lettered", "zapw events made inbound dead letters (replays included)",
     INBOUND_DEAD_COUNTER),
    ("zapa_inbound_bursts",
     "Bursts of two or more messages handed to the inbound task as one task", BURSTS_COUNTER),
    ("zapa_inbound_coalesced_messages", "Inbound messages handed on as part of a burst",
     COALESCED_COUNTER),
)


class Metrics:
    """Counting side: cheap HINCRBYs that never fail the work they count.

    A send's outcome, latency and retry are counted by the status change that records them,
    in the same Redis call: `sends`, `send_latency` and `retries` say what to add
    (`StatusStore.transition(..., counts=...)`); the `count_*` methods add at once.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @staticmethod
    def sends(outcome: str) -> tuple[Increment, ...]:
        return (Increment(keys.METRICS_COUNTERS, f"{SEND_OUTCOMES}:{outcome}", 1),)

    @staticmethod
    def send_latency(seconds: float) -> tuple[Increment, ...]:
        bucket = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
        return (Increment(keys.METRICS_SEND_LATENCY, bucket, 1),
                Increment(keys.METRICS_SEND_LATENCY, "sum", seconds))

    @staticmethod
    def retries() -> tuple[Increment, ...]:
        return (Increment(keys.METRICS_COUNTERS, RETRIES, 1),)

    def count_send(self, outcome: str) -> None:
        self._add(self.sends(outcome))

    def count_possible_duplicate(self) -> None:
        self._add((Increment(keys.METRICS_COUNTERS, POSSIBLE_DUPLICATES, 1),))

    def count_rate_limited(self) -> None:
        self._add((Increment(keys.METRICS_COUNTERS, RATE_LIMITED, 1),))

    def count_paced(self) -> None:
        self._add((Increment(keys.METRICS_COUNTERS, PACED, 1),))

    def count_daily_held(self) -> None:
        self._add((Increment(keys.METRICS_COUNTERS, DAILY_LIMIT_HELD, 1),))

    def _add(self, counts: tuple[Increment, ...]) -> None:
        with contextlib.suppress(redis.RedisError):
            pipe = self.redis.pipeline(transaction=False)
            for key, field, by in counts:
                if isinstance(by, float):
                    pipe.hincrbyfloat(key, field, by)
                else:
                    pipe.hincrby(key, field, by)
            pipe.execute()


class RedisCollector(Collector):
    """Reading side, for a prometheus_client registry."""

    def __init__(self, client: redis.Redis, broker: BrokerLayout, queues: Iterable[str]) -> None:
        self.redis = client
        self.broker = broker
        self.queues = list(queues)

    def collect(self) -> Iterator[Metric]:
        counters = text_hash(self.redis.hgetall(keys.METRICS_COUNTERS))
        sends = CounterMetricFamily("zapa_sends", "Outbound delivery attempts by outcome",
                                    labels=["outcome"])
        for field, value in sorted(counters.items()):
            if field.startswith(f"{SEND_OUTCOMES}:"):
                sends.add_metric([field.split(":", 1)[1]], float(value))
        yield sends
        for name, documentation, field in PLAIN_COUNTERS:
            yield CounterMetricFamily(name, documentation,
                                      value=float(counters.get(field, 0)))

        webhooks = CounterMetricFamily("zapa_webhooks", "Webhook events by type and outcome",
                                       labels=["event_type", "outcome"])
        for (event_type, outcome), count in sorted(self._webhook_counts().items()):
            webhooks.add_metric([event_type, outcome], count)
        yield webhooks
        recovered = CounterMetricFamily(
            "zapa_webhook_events_recovered",
            "Events taken from zapw's GET /events list because their webhook never came",
            labels=["session"])
        for session, count in sorted(bounded_by_label(recovered_counts(self.redis)).items()):
            recovered.add_metric([session], count)
        yield recovered

        yield self._latency()

        depth = GaugeMetricFamily("zapa_queue_depth", "Messages waiting per queue",
                                  labels=["queue"])
        age = GaugeMetricFamily("zapa_queue_oldest_age_seconds",
                                "Age of the oldest waiting message per queue", labels=["queue"])
        for name, stat in self.broker.queue_stats(self.redis, self.queues).items():
            depth.add_metric([name], stat.depth)
            age.add_metric([name], stat.oldest_age or 0.0)
        yield depth
        yield age

        held = GaugeMetricFamily("zapa_held_messages",
                                 "Messages held for offline sessions or daily limits",
                                 labels=["session"])
        for session, count in bounded_by_label(HeldMessages(self.redis).counts()).items():
            held.add_metric([session], count)
        yield held
        yield GaugeMetricFamily("zapa_deferred_messages",
                                "Messages waiting in Redis for a rate-limit slot, pacing or "
                                "their turn",
                                value=float(self.redis.zcard(keys.DUE)))
        yield GaugeMetricFamily("zapa_dead_letters", "Dead letters awaiting an operator",
                                value=DeadLetters.count_in(self.redis))
        yield GaugeMetricFamily("zapa_inbound_dead_letters",
                                "zapw events that could not be applied, awaiting an operator",
                                value=InboundDeadLetters.count_in(self.redis))
        yield GaugeMetricFamily("zapa_inbound_bursts_waiting",
                                "Senders with messages waiting in a burst not yet handed on",
                                value=float(self.redis.zcard(keys.BURSTS_DUE)))
        yield GaugeMetricFamily("zapa_bridge_up",
                                "1 when the last health check reached the bridge",
                                value=self._bridge_up())

    def _webhook_counts(self) -> dict[tuple[str, str], float]:
        """By (type, outcome); types we do not handle under one label, including those
        counted by their own names before that label existed."""
        counts: dict[tuple[str, str], float] = {}
        for field, value in text_hash(self.redis.hgetall(keys.WEBHOOK_STATS)).items():
            event_type, _, outcome = field.rpartition(":")
            if event_type not in KNOWN_EVENTS or outcome not in WEBHOOK_OUTCOMES:
                event_type, outcome = OTHER_EVENTS, outcome if outcome in WEBHOOK_OUTCOMES \
                    else "ignored"
            counts[event_type, outcome] = counts.get((event_type, outcome), 0.0) + float(value)
        return counts

    def _latency(self) -> Metric:
        raw = self.redis.hgetall(keys.METRICS_SEND_LATENCY)
        buckets, running = [], 0.0
        for bound in (*map(str, LATENCY_BUCKETS), "+Inf"):
            running += float(raw.get(bound, 0))
            buckets.append((bound, running))
        return HistogramMetricFamily("zapa_send_latency_seconds",
                                     "Time of the bridge's send call", buckets=buckets,
                                     sum_value=float(raw.get("sum", 0.0)))

    def _bridge_up(self) -> float:
        raw = self.redis.get(keys.HEALTH_SNAPSHOT)
        if not raw:
            return 0.0
        bridge = json.loads(raw).get("components", {}).get("bridge", {})
        return 1.0 if bridge.get("status") in ("healthy", "degraded") else 0.0


def bounded_by_label(counts: dict[str, int]) -> dict[str, float]:
    """`counts` with at most `MAX_LABEL_VALUES` labels: the largest kept, the rest summed
    under `OTHER_LABEL`."""
    if len(counts) <= MAX_LABEL_VALUES:
        return {label: float(count) for label, count in counts.items()}
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = {label: float(count) for label, count in ranked[:MAX_LABEL_VALUES - 1]}
    kept[OTHER_LABEL] = float(sum(count for _, count in ranked[MAX_LABEL_VALUES - 1:]))
    return kept
