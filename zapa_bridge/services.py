"""The core objects, built once per process from the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import redis

from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.bridge.reconcile import ReconcileRequests
from zapa_bridge.bridge.sessions import SessionRegistry
from zapa_bridge.config import Settings
from zapa_bridge.inbound.dead_letters import InboundDeadLetters
from zapa_bridge.inbound.handlers import EventHandler, RouteInbound
from zapa_bridge.inbound.intake import Intake, PrepareEvent
from zapa_bridge.inbound.messages import InboundLog
from zapa_bridge.inbound.spool import Spool
from zapa_bridge.ops.metrics import Metrics
from zapa_bridge.outbound.dead_letters import DeadLetters
from zapa_bridge.outbound.delivery import Deliverer
from zapa_bridge.outbound.dispatch import Dispatcher, Publish
from zapa_bridge.outbound.holds import HeldMessages
from zapa_bridge.outbound.outbox import Outbox
from zapa_bridge.outbound.rate_limit import SessionRateLimiter
from zapa_bridge.outbound.rate_spec import parse_rate, parse_session_rates
from zapa_bridge.outbound.retry_policy import RetryPolicy
from zapa_bridge.outbound.status_store import StatusStore
from zapa_bridge.store import keys
from zapa_bridge.store.connection import fast_redis_client, redis_client
from zapa_bridge.store.prepared import PrepareSend

# Extra time a send claim lasts beyond the bridge call's own timeouts.
LEASE_MARGIN = 5.0


@dataclass
class Services:
    settings: Settings

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.settings.redis_url)

    @cached_property
    def store(self) -> StatusStore:
        return StatusStore(self.redis, retention=self.settings.status_retention)

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
        return InboundDeadLetters(self.redis, retention=self.settings.status_retention,
                                  counters_key=keys.METRICS_COUNTERS)

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_settings(self.settings)

    @cached_property
    def reconcile_requests(self) -> ReconcileRequests:
        return ReconcileRequests(self.redis)

    def deliverer(self, publish: Publish,
                  request_reconcile: Callable[[], None] = lambda: None) -> Deliverer:
        """`request_reconcile` asks for a reconciliation at once (a session went missing)."""
        lease = self.settings.zapw_connect_timeout + self.settings.zapw_timeout + LEASE_MARGIN
        return Deliverer(self.store, self.bridge, self.sessions, self.retry_policy,
                         self.metrics, self.dispatcher(publish), self.rate_limiter,
                         lease_seconds=lease, managed_sessions=self.settings.managed_sessions,
                         request_reconcile=request_reconcile)

    def dispatcher(self, publish: Publish) -> Dispatcher:
        return Dispatcher(self.store, publish)

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

    def outbox(self, publish: Publish, prepare: PrepareSend) -> Outbox:
        return Outbox(self.store, self.dispatcher(publish), prepare)

    def intake(self, prepare: PrepareEvent) -> Intake:
        return Intake(fast_redis_client(self.settings.redis_url), prepare, self.spool,
                      dedupe_ttl=self.settings.dedupe_ttl)

    def event_handler(self, publish: Publish, prepare: PrepareSend,
                      route: RouteInbound) -> EventHandler:
        return EventHandler(self.store, self.sessions, self.inbound, self.outbox(publish, prepare),
                            route)
