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
    return _client(url, timeout=SOCKET_TIMEOUT, retries=3, backoff_cap=1.0)


@lru_cache(maxsize=8)
def fast_redis_client(url: str) -> redis.Redis:
    """For the webhook route: gives up within about a second, so an event is spooled and
    answered long before zapw's 10 s timeout instead of waiting on a dead Redis."""
    return _client(url, timeout=FAST_TIMEOUT, retries=1, backoff_cap=0.1)


def _client(url: str, *, timeout: float, retries: int, backoff_cap: float) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=backoff_cap, base=0.02), retries=retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
