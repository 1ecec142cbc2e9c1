"""The due-message mover: a thread in every worker that publishes messages whose wait in
Redis is over (a rate-limit slot came free, or their turn in the conversation came), and
hands on the inbound bursts that closed (zapa_bridge.inbound.bursts).

Every worker runs one, so sends go on while any worker is up; taking a due message is
atomic, so each is published once (see zapa_bridge.outbound.dispatch). The same thread
beats for its worker process and, once a second, watches for dead ones
(zapa_bridge.outbound.crash_recovery).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutting_down
from kombu.exceptions import OperationalError

from workers.runtime import services
from zapa_bridge.config import get_settings
from zapa_bridge.errors import QueueUnavailable
from zapa_bridge.logs import line
from zapa_bridge.outbound.crash_recovery import BEAT_EVERY

log = logging.getLogger("zapa.due_mover")

_stop = threading.Event()


@worker_ready.connect
def start_due_mover(sender: Any = None, **_: Any) -> None:
    interval = get_settings().due_poll_interval

    def run() -> None:
        failing = False
        next_beat = 0.0
        while not _stop.wait(interval):
            try:
                core = services()
                if time.monotonic() >= next_beat:
                    core.crash_recovery.beat()
                    core.crash_recovery.watch()
                    next_beat = time.monotonic() + BEAT_EVERY
                core.dispatcher.move_due()
                core.bursts.move_due()
            except (redis.RedisError, OperationalError, QueueUnavailable) as exc:
                # Redis is away: the messages stay due and go once it is back.
                if not failing:
                    log.warning(line("due_mover.paused", reason=type(exc).__name__))
                failing = True
                continue
            if failing:
                log.info(line("due_mover.resumed"))
                failing = False

    threading.Thread(target=run, name="zapa-due-mover", daemon=True).start()


@worker_shutting_down.connect
def stop_due_mover(**_: Any) -> None:
    _stop.set()
