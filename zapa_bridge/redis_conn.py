"""Redis connections for our own state (records, holds, dead letters, sessions)."""

from __future__ import annotations

from functools import lru_cache

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

# A dead connection must fail fast rather than hang a webhook or a worker thread.
SOCKET_TIMEOUT = 5.0
FAST_TIMEOUT = 0.5


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """One pooled client per URL and process; rides out short blips with 3 retries."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


@lru_cache(maxsize=8)
def fast_redis_client(url: str) -> redis.Redis:
    """For the webhook route: gives up within about a second, so an event is spooled and
    answered long before zapw's 10 s timeout instead of waiting on a dead Redis."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=FAST_TIMEOUT,
        socket_connect_timeout=FAST_TIMEOUT,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), retries=1),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
