"""RedBeat's scheduler, made to ride out Redis going away under it.

RedBeat extends its lock and reads the schedule from Redis on every tick, and celery beat
ends the process on any exception a tick raises: a Redis restart or a Sentinel failover
stopped beat until something restarted it. Here a tick that cannot reach Redis sends
nothing (it cannot prove it still holds the lock) and is tried again shortly. A lock found
lost (it expired during a long outage, or a Redis without persistence came back empty) is
taken again if no one holds it; while another beat holds it, this one waits as a standby.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redbeat import RedBeatScheduler
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, get_redis
from redis.exceptions import LockError
from redis.sentinel import MasterNotFoundError

from zapa_bridge.logs import line

log = logging.getLogger("zapa.beat")

# s until a tick that failed is tried again: short, as the outage it waits out usually is.
RETRY_AFTER = 1.0
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, MasterNotFoundError)


class SteadyRedBeatScheduler(RedBeatScheduler):
    def tick(self, **kwargs: Any) -> float:
        try:
            if self.lock_key and not self._holds_lock():
                return float(self.max_interval)
            interval: float = super().tick(**kwargs)
        except UNREACHABLE as exc:
            log.warning(line("beat.redis_unreachable", error=type(exc).__name__,
                             retry_in=RETRY_AFTER))
            return RETRY_AFTER
        except LockError:
            log.warning(line("beat.lock_lost"))
            self.lock = None
            return RETRY_AFTER
        return interval

    def _holds_lock(self) -> bool:
        """Whether this beat has the lock, taking it if it is free. RedBeat takes it once,
        at start-up, and leaves `lock` None when Redis did not answer then."""
        if self.lock is not None:
            return True
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        if not lock.acquire(blocking=False):
            return False
        log.info(line("beat.lock_acquired"))
        self.lock = lock
        return True
