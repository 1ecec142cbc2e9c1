"""Celery tasks. Each is a thin edge: parse, call one core function, act on its answer.

Services enqueue with `send_message.delay(to=..., text=..., session=..., priority=...)`;
the arguments are validated in the caller's process before anything is queued.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject, Retry
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from workers.celery_app import app
from workers.queues import SEND_QUEUE_BY_PRIORITY
from zapa_bridge.config import get_settings
from zapa_bridge.errors import InvalidMessage, QueueUnavailable
from zapa_bridge.messages import OutboundMessage, build_message
from zapa_bridge.outbox import Outbox
from zapa_bridge.reconcile import reconcile as reconcile_bridge
from zapa_bridge.services import Services

log = logging.getLogger("zapa.tasks")

POSITIONAL_FIELDS = ("to", "text")
ACCEPTED_OPTIONS = frozenset()


@cache
def services() -> Services:
    """This process's core objects (built lazily, so after a worker forks)."""
    return Services(get_settings())


def outbox() -> Outbox:
    return services().outbox(send_message.publish)


class SendMessageTask(Task):
    """`send_message` with validation and a status record before the message is queued."""

    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
                    producer: Any = None, link: Any = None, link_error: Any = None,
                    shadow: Any = None, **options: Any) -> AsyncResult:
        if options.get("retries"):
            # Celery re-sending a message it already accepted (self.retry): pass through.
            return super().apply_async(args, kwargs, task_id=task_id, producer=producer,
                                       link=link, link_error=link_error, shadow=shadow,
                                       **options)
        for option in sorted(set(options) - ACCEPTED_OPTIONS):
            # A countdown or eta longer than the visibility timeout would be sent twice, and
            # a queue would bypass priority routing: refuse rather than ignore them.
            raise InvalidMessage(option, "not supported by send_message; use priority=")
        message = build_message(default_session=get_settings().default_session,
                                **_fields(args, kwargs))
        message_id = outbox().enqueue(message, task_id)
        return self.AsyncResult(message_id)

    def publish(self, message_id: str, message: OutboundMessage,
                countdown: float | None = None) -> None:
        """Put one validated message on its priority queue under `message_id`."""
        try:
            super().apply_async(
                kwargs=message.to_task_kwargs(), task_id=message_id, countdown=countdown,
                queue=SEND_QUEUE_BY_PRIORITY[message.priority], retries=0,
                argsrepr="()", kwargsrepr=repr(message.log_fields()),
            )
        except (OperationalError, redis.RedisError) as exc:
            raise QueueUnavailable(f"broker unreachable: {type(exc).__name__}") from None


def _fields(args: Any, kwargs: Any) -> dict[str, Any]:
    args = tuple(args or ())
    if len(args) > len(POSITIONAL_FIELDS):
        raise InvalidMessage("args", "only to and text may be given by position")
    fields = dict(zip(POSITIONAL_FIELDS, args, strict=False))
    for key, value in (kwargs or {}).items():
        if key in fields:
            raise InvalidMessage(key, "given twice")
        fields[key] = value
    return fields


@app.task(bind=True, base=SendMessageTask, name="zapa.send_message", acks_late=True,
          reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def send_message(self: SendMessageTask, to: str | None = None, text: str | None = None,
                 **fields: Any) -> dict[str, Any]:
    """Send one WhatsApp message through zapw (the task id is the message id)."""
    task_kwargs = {key: value for key, value in {"to": to, "text": text, **fields}.items()
                   if value is not None}
    try:
        outcome = services().deliverer.deliver(self.request.id, task_kwargs)
    except redis.RedisError as exc:
        # Our state is unreachable: put the message back rather than lose it.
        log.warning("message %s requeued: redis unavailable (%s)", self.request.id,
                    type(exc).__name__)
        raise Reject(exc, requeue=True) from None
    if outcome.retry_in is None:
        return outcome.summary()
    try:
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    except Retry:
        raise
    except Exception as exc:
        # The retry could not be published: requeue this delivery instead of acking it.
        raise Reject(exc, requeue=True) from None


@app.task(name="zapa.release_held", ignore_result=True)
def release_held(session: str) -> int:
    """Re-queue the messages held for a session that is connected again."""
    return outbox().release_held(session)


@app.task(name="zapa.reconcile", ignore_result=True)
def reconcile() -> dict[str, object]:
    """Periodic: sync sessions from the bridge, release and expire held messages."""
    core = services()
    report = reconcile_bridge(core.bridge, core.sessions, outbox(),
                              hold_validity=core.settings.hold_validity)
    return report.as_dict()
