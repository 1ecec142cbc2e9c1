"""Redis connections for our own state (records, holds, dead letters, sessions).

With Sentinel, a client asks the Sentinels for the master on every new connection, and a
connection to a master that became a replica is dropped on its first refused write: after a
failover, the retries below land on the new master.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from zapa_bridge.store.redis_endpoint import RedisEndpoint, SentinelUrl, endpoint

# A dead connection must fail fast rather than hang a webhook or a worker thread.
SOCKET_TIMEOUT = 5.0
FAST_TIMEOUT = 0.5


def redis_client(target: str | RedisEndpoint) -> redis.Redis:
    """One pooled client per endpoint and process; rides out short blips with 3 retries."""
    return _cached_client(endpoint(target), SOCKET_TIMEOUT, 3, 1.0)


def fast_redis_client(target: str | RedisEndpoint) -> redis.Redis:
    """For the webhook route: gives up within about a second, so an event is spooled and
    answered long before zapw's 10 s timeout instead of waiting on a dead Redis."""
    return _cached_client(endpoint(target), FAST_TIMEOUT, 1, 0.1)


def sentinel_manager(target: RedisEndpoint, parts: SentinelUrl,
                     timeout: float = SOCKET_TIMEOUT) -> Sentinel:
    """redis-py's Sentinel for `target` (its own password on the Sentinel connections)."""
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": timeout,
                                       "socket_connect_timeout": timeout}
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    return Sentinel(list(parts.sentinels),  # type: ignore[no-untyped-call, unused-ignore]
                    sentinel_kwargs=sentinel_kwargs)


@lru_cache(maxsize=8)
def _cached_client(target: RedisEndpoint, timeout: float, retries: int,
                   backoff_cap: float) -> redis.Redis:
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=backoff_cap, base=0.02), retries=retries),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }
    return _connect(target, timeout, options)


def probe_client(target: str | RedisEndpoint, timeout: float = FAST_TIMEOUT) -> redis.Redis:
    """A client of its own (not pooled with the others, no retries) for one quick look:
    whether Redis answers, what the master is."""
    target = endpoint(target)
    options: dict[str, Any] = {"decode_responses": True, "socket_timeout": timeout,
                               "socket_connect_timeout": timeout}
    return _connect(target, timeout, options)


def _connect(target: RedisEndpoint, timeout: float, options: dict[str, Any]) -> redis.Redis:
    """A client of `target` with `options`: the URL's server, or the master its Sentinels
    name (asked again on every new connection)."""
    parts = target.sentinel
    if parts is None:
        return redis.Redis.from_url(target.url, **options)
    client: redis.Redis = sentinel_manager(target, parts, timeout).master_for(  # type: ignore[no-untyped-call, unused-ignore]
        target.master_name, redis_class=redis.Redis, db=parts.db, username=parts.username,
        password=parts.password, **options)
    return client
