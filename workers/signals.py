"""Celery signal handlers: an enqueue timestamp on every message, worker heartbeats, and
tracing set up in each worker process (off unless configured: zapa_bridge.tracing). Also
Celery's per-task log lines of a send, lowered to DEBUG."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import redis
from celery.app import trace
from celery.signals import (
    before_task_publish,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutting_down,
)

from zapa_bridge.config import get_settings
from zapa_bridge.store import keys
from zapa_bridge.store.connection import redis_client
from zapa_bridge.store.publisher import ENQUEUED_AT_HEADER, TaskName
from zapa_bridge.tracing import configure_tracing

HEARTBEAT_EVERY = 10.0
HEARTBEAT_TTL = 30

_heartbeat_stop = threading.Event()


class SendLinesAtDebug(logging.Filter):
    """Celery's "received" and "succeeded" lines of each `send_message`, at DEBUG: a send
    logs one line at INFO, its own (`message.sent`), and each line is CPU on the hot path.
    Its retries and failures keep their levels, and so do other tasks' lines (an event's
    "succeeded" line is where its outcome is told)."""

    LINES = (trace.LOG_RECEIVED, trace.LOG_SUCCESS)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.msg not in self.LINES:
            return True
        context = record.args
        if not isinstance(context, Mapping) or context.get("name") != TaskName.SEND_MESSAGE:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


# The loggers Celery writes those lines with: the worker's strategy ("received") and the
# task tracer ("succeeded", and retries, failures, which the filter lets through as they are).
for _name in ("celery.worker.strategy", "celery.app.trace"):
    logging.getLogger(_name).addFilter(SendLinesAtDebug())


@before_task_publish.connect
def stamp_enqueue_time(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Lets queue stats tell the age of the oldest waiting message."""
    if headers is not None:
        headers.setdefault(ENQUEUED_AT_HEADER, time.time())


@worker_init.connect
@worker_process_init.connect
def start_tracing(**_: Any) -> None:
    """In the worker's process (the pool's child, when it forks): the SDK's export thread
    must start after any fork. Once per process; nothing when tracing is off."""
    configure_tracing("zapa-bridge-worker", celery=True)


@worker_ready.connect
def start_heartbeat(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    started = time.time()
    client = redis_client(get_settings().redis)

    def beat() -> None:
        while True:
            # A missed beat shows in the health check; it must not end the thread.
            with contextlib.suppress(redis.RedisError):
                client.set(keys.worker(hostname), json.dumps({
                    "hostname": hostname, "pid": os.getpid(), "started": started,
                    "at": time.time()}), ex=HEARTBEAT_TTL)
            if _heartbeat_stop.wait(HEARTBEAT_EVERY):
                return

    threading.Thread(target=beat, name="zapa-heartbeat", daemon=True).start()


@worker_shutting_down.connect
def stop_heartbeat(sender: Any = None, **_: Any) -> None:
    _heartbeat_stop.set()
    with contextlib.suppress(redis.RedisError):
        redis_client(get_settings().redis).delete(keys.worker(str(sender)))
