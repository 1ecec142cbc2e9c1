"""What becomes of a zapw event whose handling failed: tried again later, or kept as an
inbound dead letter.

A lost connection to Redis, or a Redis that cannot take writes for a moment (loading, a
read-only replica during a failover, out of memory, a queue it refused), can pass: the
event is tried again with capped exponential backoff, within the retry budget. Anything
else (a value our scripts refuse, a body that is not a zapw event, a bug) fails the same
way every time, so trying it again would only loop: it becomes a dead letter at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis import exceptions as redis_errors

from zapa_bridge.errors import QueueUnavailable
from zapa_bridge.outbound.retry_policy import RetryPolicy

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError, redis_errors.TryAgainError, redis_errors.MasterDownError,
    redis_errors.ClusterDownError, QueueUnavailable,
)


def can_pass(error: BaseException) -> bool:
    """Whether the error is one of Redis (or the broker) being away for a while."""
    return isinstance(error, TRANSIENT_ERRORS)


@dataclass(frozen=True, slots=True)
class EventFailure:
    """`retry_in` seconds to wait before the next attempt, or None: dead-letter it now."""

    reason: str
    retry_in: float | None = None


def decide(error: BaseException, *, failures: int, policy: RetryPolicy,
           transient: bool = False) -> EventFailure:
    """`failures`: how many attempts failed, this one included. `transient` marks an error
    of a kind this module does not know (the broker's) as one that can pass."""
    reason = f"{type(error).__name__}: {error}"
    if not (transient or can_pass(error)):
        return EventFailure(reason)
    if not policy.allows(failures):
        return EventFailure(f"gave up after {failures} attempts: {reason}")
    return EventFailure(reason, retry_in=policy.delay(failures))
