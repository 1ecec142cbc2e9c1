"""Celery tasks. Each is a thin edge: parse, call one core function, act on its answer.

Services enqueue with `send_message.delay(to=..., text=..., session=..., priority=...)`;
the arguments are validated in the caller's process before anything is queued.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, NoReturn

import redis
from celery import Task
from celery.exceptions import Reject, Retry
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from redbeat.schedulers import RedBeatSchedulerEntry

import workers.due_mover  # noqa: F401  (starts the due-message mover in each worker)
from workers.celery_app import app
from workers.runtime import services
from zapa_bridge.bridge.reconcile import ReconcileReport
from zapa_bridge.bridge.reconcile import reconcile as reconcile_bridge
from zapa_bridge.config import Settings, get_settings
from zapa_bridge.errors import BridgeError, IntakeUnavailable, InvalidMessage, QueueUnavailable
from zapa_bridge.inbound.echo import echo_reply
from zapa_bridge.inbound.events import parse_event
from zapa_bridge.inbound.failures import can_pass
from zapa_bridge.inbound.failures import decide as decide_failure
from zapa_bridge.logs import line
from zapa_bridge.ops.health import HealthChecker
from zapa_bridge.outbound.messages import build_message
from zapa_bridge.services import Services
from zapa_bridge.store.publisher import TaskName

log = logging.getLogger("zapa.tasks")

POSITIONAL_FIELDS = ("to", "text")
HEALTH_ENTRY = "health-check"
ACCEPTED_OPTIONS: frozenset[str] = frozenset()


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
        settings = get_settings()
        message = build_message(_fields(args, kwargs),
                                default_session=settings.default_session,
                                max_body_bytes=settings.zapw_max_body_bytes,
                                max_text_parts=settings.max_text_parts)
        message_id = services().outbox.enqueue(message, task_id)
        return self.AsyncResult(message_id)


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


@app.task(bind=True, base=SendMessageTask, name=TaskName.SEND_MESSAGE, acks_late=True,
          reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def send_message(self: SendMessageTask, to: str | None = None, text: str | None = None,
                 **fields: Any) -> dict[str, Any]:
    """Send one WhatsApp message through zapw (the task id is the message id), then the
    next ones of its conversation that are due at once, for as long as `go_on_for` allows."""
    task_kwargs = {key: value for key, value in {"to": to, "text": text, **fields}.items()
                   if value is not None}
    core = services()
    try:
        outcome = core.deliverer.deliver(self.request.id, task_kwargs,
                                         go_on_for=go_on_for(core.settings))
    except redis.RedisError as exc:
        return send_failed(self, exc)
    # A retry waits in the due set (the deliverer put it there): this delivery is done.
    return outcome.summary()


def go_on_for(settings: Settings) -> float:
    """How long a run of `send_message` may go on sending the next messages of its
    conversation: well inside the visibility timeout, after which its own message would be
    delivered again, leaving room for the one bridge call that may start last."""
    return max(0.0, (settings.visibility_timeout - settings.one_attempt) / 2)


def countdown_cap(settings: Settings) -> float:
    """The longest Celery countdown a task may wait in: the worker holds it unacked, so
    the countdown and the attempt after it must end inside the visibility timeout."""
    return max(0.05, go_on_for(settings))


def send_failed(task: Task, error: redis.RedisError) -> dict[str, Any]:
    """Our state could not be read or written. A failure that can pass (a lost connection)
    is tried again with capped backoff for as long as it lasts: the message and any dead
    letter of it live in that Redis. One that cannot (a script error, a key of the wrong
    type) makes the message a dead letter, or, when even that cannot be written, is tried
    again at the backoff cap: never at once, so nothing spins."""
    core = services()
    shown = {"message_id": task.request.id, "error": type(error).__name__}
    if can_pass(error):
        delay = core.retry_policy.delay(task.request.retries + 1)
        log.warning(line("message.retry", **shown, reason="redis unavailable",
                         retry_in=f"{delay:.2f}"))
        retry_later(task, delay)
    try:
        outcome = core.deliverer.fail(task.request.id,
                                   f"state unusable: {type(error).__name__}: {error}")
    except redis.RedisError:
        log.error(line("message.unrecorded", **shown, retry_in=f"{core.retry_policy.cap:g}"))
        retry_later(task, core.retry_policy.cap)
    return outcome.summary()


def retry_later(task: Task, countdown: float) -> NoReturn:
    """Celery's retry (a new message, same id) after at most `countdown_cap`; if it cannot
    be published, requeue this delivery instead of acknowledging it. The retry keeps the
    first message's redacted argsrepr/kwargsrepr, so neither task events nor logs ever show
    the arguments. Sends wait in the due set instead; this is for events, and for a send
    whose state is unreachable."""
    shown = getattr(task.request, "kwargsrepr", None) or repr({"retry_of": task.request.id})
    countdown = min(countdown, countdown_cap(get_settings()))
    try:
        raise task.retry(countdown=countdown, max_retries=None, argsrepr="()",
                         kwargsrepr=shown)
    except Retry:
        raise
    except Exception as exc:
        raise Reject(exc, requeue=True) from None


@app.task(name="zapa.release_held", ignore_result=True)
def release_held(session: str) -> int:
    """Re-queue the messages held for a session that is connected again."""
    return services().outbox.release_held(session)


@app.task(name=TaskName.RECONCILE, ignore_result=True)
def reconcile() -> dict[str, object]:
    """Periodic: sync sessions from the bridge, release and expire held messages, create
    the sessions of ZAPA_SESSIONS that the bridge lacks, re-queue lost messages."""
    return run_reconcile().as_dict()


def run_reconcile(core: Services | None = None) -> ReconcileReport:
    core = core or services()
    with contextlib.suppress(redis.RedisError):
        core.reconcile_requests.started()
    # Due messages are moved, and dead workers' messages recovered, by every worker several
    # times a second; this is the fallback.
    core.dispatcher.move_due()
    core.crash_recovery.watch()
    core.bursts.move_due()
    return reconcile_bridge(core.bridge, core.sessions, core.outbox,
                            hold_validity=core.settings.hold_validity,
                            managed_sessions=core.settings.managed_sessions,
                            sweeper=core.lost_message_sweeper)


# The kind of error the last poll of GET /events failed with in this process, if it did.
_poll_failing: list[str] = []


@app.task(name=TaskName.RECOVER_EVENTS, ignore_result=True)
def recover_events() -> dict[str, object] | None:
    """Periodic: offer the events of zapw's GET /events whose webhook never came to the
    intake (None when another poll still runs). A failure is logged when it starts or
    changes, not at every poll: the list is still there at the next one."""
    try:
        report = services().event_recovery.poll()
    except (BridgeError, IntakeUnavailable, redis.RedisError) as exc:
        kind = type(exc).__name__
        if _poll_failing != [kind]:
            log.warning(line("events.poll_failed", error=kind))
            _poll_failing[:] = [kind]
        return None
    if _poll_failing:
        log.info(line("events.poll_resumed"))
        _poll_failing.clear()
    return None if report is None else report.as_dict()


def health_checker(core: Services | None = None) -> HealthChecker:
    core = core or services()
    queues = [queue.name for queue in app.conf.task_queues]
    return HealthChecker(core.settings, core.redis, core.bridge, core.broker, queues,
                         beat_last_run=beat_last_run)


def beat_last_run() -> float | None:
    """When beat last dispatched the health check (RedBeat keeps it in Redis)."""
    meta = RedBeatSchedulerEntry.load_meta(
        f"{app.conf.redbeat_key_prefix}{HEALTH_ENTRY}", app=app)
    last = meta.get("last_run_at")
    return last.timestamp() if last is not None else None


@app.task(name="zapa.health_check", ignore_result=True)
def health_check() -> str:
    """Periodic: check every component and store the snapshot; a bridge that restarted
    gets a full resync at once."""
    checker = health_checker()
    snapshot = checker.run()
    if checker.bridge_restarted:
        log.warning(line("bridge.restarted", action="full resync"))
        run_reconcile()
    return str(snapshot.overall)


@app.task(bind=True, name=TaskName.HANDLE_EVENT, acks_late=True, reject_on_worker_lost=True,
          max_retries=None, ignore_result=True)
def handle_event(self: Task, event: Any) -> str:
    """Act on one zapw webhook event (see zapa_bridge.inbound.handlers); one that cannot be
    applied ends as an inbound dead letter (see zapa_bridge.inbound.failures)."""
    try:
        handled = services().event_handler.handle(parse_event(event))
    except Exception as exc:  # every failure ends retried or dead-lettered, never looping
        return event_failed(self, event, exc)
    return handled.outcome


def event_failed(task: Task, event: Any, error: Exception) -> str:
    """Retry an event whose failure can pass, with backoff and within the budget; keep any
    other as an inbound dead letter. Logs name the error's kind only: its text may quote
    the event."""
    core = services()
    failures = task.request.retries + 1
    failure = decide_failure(error, failures=failures, policy=core.retry_policy,
                             transient=isinstance(error, OperationalError))
    event_type = event.get("eventType") if isinstance(event, dict) else None
    shown = {"task_id": task.request.id, "event_type": str(event_type)[:60],
             "error": type(error).__name__, "attempt": failures}
    if failure.retry_in is not None:
        log.warning(line("event.retry", **shown, retry_in=f"{failure.retry_in:.2f}"))
        retry_later(task, failure.retry_in)
    try:
        core.inbound_dead_letters.add(task.request.id, event, failure.reason,
                                      attempts=failures)
    except redis.RedisError as exc:
        # Nowhere to keep it now: try the whole event again after the longest backoff.
        log.warning(line("event.not_dead_lettered", **shown, reason=type(exc).__name__))
        retry_later(task, core.retry_policy.cap)
    log.error(line("event.dead_letter", **shown))
    return "dead letter"


@app.task(name="zapa.echo", bind=True, ignore_result=True)
def echo(self: Task, message: dict[str, Any]) -> str | None:
    """Built-in inbound handler for the local stack: reply with the message's own text. A
    send refused (Redis unreachable, or no replica confirmed it) is tried again for as long
    as that lasts, as Zapa's handler should; the reply's idempotency key keeps it to one."""
    reply = echo_reply(message)
    if reply is None:
        return None
    try:
        return send_message.delay(**reply).id
    except InvalidMessage as exc:
        log.warning(line("echo.not_sent", inbound_id=message.get("id"), reason=str(exc)))
        return None
    except QueueUnavailable as exc:
        delay = services().retry_policy.delay(self.request.retries + 1)
        log.warning(line("echo.retry", inbound_id=message.get("id"),
                         error=str(exc), retry_in=f"{delay:.2f}"))
        retry_later(self, delay)
