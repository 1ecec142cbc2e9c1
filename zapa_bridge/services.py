"""The core objects, built once per process from the settings and the broker's layout.

Each is made here, once, and handed what it needs: the publisher that puts task messages on
the broker's queues, the dispatcher that every republish goes through, and so on. Nothing
is passed around as a callable; the Celery edge supplies the broker's layout
(workers/broker.py) and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import redis

from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.bridge.reconcile_requests import ReconcileRequests
from zapa_bridge.bridge.sessions import SessionRegistry
from zapa_bridge.config import Settings
from zapa_bridge.inbound.bursts import Bursts
from zapa_bridge.inbound.dead_letters import InboundDeadLetters
from zapa_bridge.inbound.handlers import EventHandler
from zapa_bridge.inbound.intake import Intake
from zapa_bridge.inbound.messages import InboundLog
from zapa_bridge.inbound.recovery import EventRecovery
from zapa_bridge.inbound.routing import InboundRouter
from zapa_bridge.inbound.spool import Spool
from zapa_bridge.ops.metrics import Metrics
from zapa_bridge.outbound.crash_recovery import CrashRecovery, process_owner
from zapa_bridge.outbound.dead_letters import DeadLetters
from zapa_bridge.outbound.delivery import Deliverer
from zapa_bridge.outbound.dispatch import Dispatcher
from zapa_bridge.outbound.holds import HeldMessages
from zapa_bridge.outbound.outbox import Outbox
from zapa_bridge.outbound.pacing import Pacing
from zapa_bridge.outbound.rate_limit import SessionRateLimiter
from zapa_bridge.outbound.rate_spec import parse_rate, parse_session_rates
from zapa_bridge.outbound.receipts import Receipts
from zapa_bridge.outbound.recovery import LostMessageSweeper
from zapa_bridge.outbound.retry_policy import RetryPolicy
from zapa_bridge.outbound.status_store import StatusStore
from zapa_bridge.queues import SEND_QUEUE_BY_PRIORITY
from zapa_bridge.store import keys
from zapa_bridge.store.broker import BrokerLayout, QueueStat
from zapa_bridge.store.connection import fast_redis_client, redis_client
from zapa_bridge.store.durability import ReplicaWait
from zapa_bridge.store.publisher import Publisher

# The client type, named apart: `Services.redis` shadows the module inside the class.
RedisClient = redis.Redis

# Extra time a send claim lasts beyond the bridge call's own timeouts.
LEASE_MARGIN = 5.0


@dataclass
class Services:
    settings: Settings
    broker: BrokerLayout

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.settings.redis)

    @cached_property
    def publisher(self) -> Publisher:
        return Publisher(self.redis, self.broker.task_format())

    @cached_property
    def store(self) -> StatusStore:
        return StatusStore(self.redis, retention=self.settings.status_retention,
                           durability=self.settings.durability)

    @cached_property
    def bridge(self) -> BridgeClient:
        return BridgeClient.from_settings(self.settings)

    @cached_property
    def sessions(self) -> SessionRegistry:
        return SessionRegistry(self.redis)

    @cached_property
    def held(self) -> HeldMessages:
        return HeldMessages(self.redis)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.store)

    @cached_property
    def inbound_dead_letters(self) -> InboundDeadLetters:
        return InboundDeadLetters(self.redis, self.publisher,
                                  retention=self.settings.status_retention,
                                  counters_key=keys.METRICS_COUNTERS)

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_settings(self.settings)

    @cached_property
    def reconcile_requests(self) -> ReconcileRequests:
        return ReconcileRequests(self.redis, self.publisher)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.store, self.publisher)

    @cached_property
    def deliverer(self) -> Deliverer:
        lease = self.settings.zapw_connect_timeout + self.settings.zapw_timeout + LEASE_MARGIN
        return Deliverer(self.store, self.bridge, self.sessions, self.retry_policy,
                         self.metrics, self.dispatcher, self.rate_limiter,
                         lease_seconds=lease, managed_sessions=self.settings.managed_sessions,
                         reconcile_requests=self.reconcile_requests, owner=process_owner(),
                         max_text_parts=self.settings.max_text_parts,
                         pacing=self.pacing)

    @cached_property
    def pacing(self) -> Pacing:
        return Pacing.from_settings(self.redis, self.settings)

    @cached_property
    def rate_limiter(self) -> SessionRateLimiter:
        return SessionRateLimiter(self.redis, parse_rate(self.settings.rate_limit),
                                  parse_session_rates(self.settings.session_rate_limits))

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics(self.redis)

    @cached_property
    def inbound(self) -> InboundLog:
        return InboundLog(self.redis, retention=self.settings.status_retention)

    @cached_property
    def spool(self) -> Spool:
        return Spool(self.settings.spool_path)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.store, self.dispatcher, self.publisher)

    @cached_property
    def intake(self) -> Intake:
        return self.intake_over(fast_redis_client(self.settings.redis), self.spool)

    def intake_over(self, client: RedisClient, spool: Spool, *, dedupe_ttl: int | None = None,
                    durability: ReplicaWait | None = None) -> Intake:
        """The webhook intake over `client` and `spool` (the web tier's is `intake`); the
        settings' dedupe TTL and replica wait unless given."""
        return Intake(client, self.publisher, spool,
                      dedupe_ttl=self.settings.dedupe_ttl if dedupe_ttl is None else dedupe_ttl,
                      router=self.inbound_router, inbound=self.inbound, receipts=self.receipts,
                      durability=self.settings.durability if durability is None else durability,
                      bursts=self.bursts if self.settings.inbound_coalesce > 0 else None)

    @cached_property
    def bursts(self) -> Bursts:
        return Bursts(self.redis, self.inbound_router, window=self.settings.inbound_coalesce,
                      cap=self.settings.inbound_coalesce_max)

    @cached_property
    def event_recovery(self) -> EventRecovery:
        """The poller of zapw's GET /events, over the worker's client: it runs as a task. An
        event first seen when half its dedupe window is gone is left alone."""
        return EventRecovery(self.redis, self.bridge, self.intake_over(self.redis, self.spool),
                             self.sessions, grace=self.settings.events_grace,
                             too_old=self.settings.dedupe_ttl / 2)

    @cached_property
    def receipts(self) -> Receipts:
        return Receipts(self.redis, retention=self.settings.status_retention)

    @cached_property
    def inbound_router(self) -> InboundRouter:
        return InboundRouter(self.publisher, task=self.settings.inbound_task,
                             queue=self.settings.inbound_queue)

    @cached_property
    def event_handler(self) -> EventHandler:
        return EventHandler(self.sessions, self.inbound, self.outbox, self.inbound_router,
                            self.receipts)

    @cached_property
    def lost_message_sweeper(self) -> LostMessageSweeper:
        return LostMessageSweeper(
            self.store, self.dispatcher, self.broker,
            queue_by_priority={str(p): str(q) for p, q in SEND_QUEUE_BY_PRIORITY.items()},
            lost_after=self.settings.lost_after)

    @cached_property
    def crash_recovery(self) -> CrashRecovery:
        return CrashRecovery(self.store, self.dispatcher, self.lost_message_sweeper,
                             owner=process_owner(),
                             lost_after=self.settings.lost_after,
                             alive_ttl=self.settings.worker_alive_ttl)

    def queue_stats(self, queues: Iterable[str]) -> dict[str, QueueStat]:
        """Depth and oldest age of each of `queues`."""
        return self.broker.queue_stats(self.redis, queues)
