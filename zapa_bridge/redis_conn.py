"""Redis connections for our own state (records, holds, dead letters, sessions)."""

from __future__ import annotations

from functools import lru_cache

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

# A dead connection must fail fast rather than hang a webhook or a worker thread.
SOCKET_TIMEOUT = 5.0


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
