"""Celery's consumer, except for the messages it cannot run: one whose body cannot be
decoded (nested past what JSON decoding allows, not JSON at all), one of no known format,
an unknown task or an invalid one.

Celery logs each of those with its body (an event's phone numbers and text) and drops it.
Here each is logged by its task name and id only, and kept as an inbound dead letter with
the reason, so nothing vanishes and nothing personal reaches a log. The body is not kept:
it is what could not be read.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery.worker.consumer import Consumer

from workers.runtime import services
from zapa_bridge.logs import line

log = logging.getLogger("zapa.consumer")
celery_log = logging.getLogger("celery.worker.consumer")

LABEL_LIMIT = 200


class QuietConsumer(Consumer):
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._keep(message, f"undecodable: {type(exc.__cause__ or exc).__name__}")
        message.ack()

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._keep(message, "unknown message format")
        message.reject_log_error(celery_log, self.connection_errors)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._keep(message, "unknown task")
        message.reject_log_error(celery_log, self.connection_errors)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._keep(message, f"invalid task message: {type(exc).__name__}")
        message.reject_log_error(celery_log, self.connection_errors)

    def _keep(self, message: Any, reason: str) -> None:
        headers = message.headers if isinstance(message.headers, dict) else {}
        task_id = _label(headers.get("id") or message.delivery_tag or "unknown")
        shown = {"task": _label(headers.get("task")), "task_id": task_id, "reason": reason,
                 "bytes": len(message.body or b"")}
        try:
            services().inbound_dead_letters.add(task_id, None, reason, attempts=1)
        except redis.RedisError as exc:
            log.critical(line("message.unreadable_lost", **shown, error=type(exc).__name__))
            return
        log.error(line("message.unreadable", **shown, kept="inbound dead letter"))


def _label(value: Any) -> str:
    return str(value)[:LABEL_LIMIT] if value is not None else "-"
