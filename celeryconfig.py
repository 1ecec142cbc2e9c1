"""Celery settings, and nothing else. Values that operators tune come from the environment
through `zapa_bridge.config` (see docs/architecture.md for why each reliability setting is
what it is)."""

from kombu import Exchange
from kombu import Queue as KombuQueue

from zapa_bridge.config import exit_on_config_error, get_settings
from zapa_bridge.errors import ConfigError
from zapa_bridge.queues import BUILTIN_INBOUND_TASKS, CONSUME_ORDER
from zapa_bridge.store import keys

try:
    _settings = get_settings()
    if _settings.inbound_queue in CONSUME_ORDER:
        # Our workers would take Zapa's inbound task, not know it, and drop it.
        raise ConfigError({"ZAPA_INBOUND_QUEUE": f"{_settings.inbound_queue} is one of "
                                                 "zapa-bridge's own queues"})
except ConfigError as error:  # worker and beat: the lines, not Celery's traceback
    exit_on_config_error(error)

_redis = _settings.redis
_sentinel = _redis.sentinel
broker_url = _redis.broker_url
broker_connection_retry_on_startup = True
broker_transport_options = {
    # Poll queues in their declared order instead of kombu's default round robin, so high
    # priority sends go first under backlog.
    "queue_order_strategy": "priority",
    # A message taken by a worker that died is redelivered after this many seconds; it must
    # cover one send attempt (checked by the settings): retries wait in the due set.
    "visibility_timeout": _settings.visibility_timeout,
    "unacked_restore_interval": _settings.unacked_restore_interval,
    "unacked_restore_throttle": 1,
    # A worker killed inside the restore sweep leaves its lock behind; kombu's default
    # (300 s) would stall crash recovery that long.
    "unacked_mutex_expire": min(300, _settings.visibility_timeout),
    # Zapa's own workers share this broker for the inbound tasks; with keys of our own, our
    # visibility timeout never redelivers their long-running tasks, nor theirs ours.
    "unacked_key": keys.UNACKED,
    "unacked_index_key": keys.UNACKED_INDEX,
    "unacked_mutex_key": keys.UNACKED_MUTEX,
    # Acks of a threaded worker share this pool; too small a pool fails acks (duplicates).
    "max_connections": _settings.worker_concurrency + 10,
    # Fail fast on a dead connection: the webhook route must answer zapw within seconds.
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
}
# Sentinel: kombu asks the Sentinels for the master on each new connection (and moves to the
# next Sentinel of the URL when one does not answer).
_sentinel_kwargs: dict[str, object] = {"socket_timeout": 2, "socket_connect_timeout": 2}
if _redis.sentinel_password:
    _sentinel_kwargs["password"] = _redis.sentinel_password
if _sentinel is not None:
    broker_transport_options |= {"master_name": _redis.master_name,
                                 "sentinel_kwargs": _sentinel_kwargs}
visibility_timeout = _settings.visibility_timeout

_consumed: list[str] = list(CONSUME_ORDER)
if _settings.inbound_task in BUILTIN_INBOUND_TASKS:
    _consumed.append(_settings.inbound_queue)
task_queues = [KombuQueue(name, Exchange(name, type="direct"), routing_key=name)
               for name in _consumed]
task_default_queue = "zapa.send.default"
# send_message picks its queue per call, by priority; upkeep tasks have their own queue.
task_routes = {
    "zapa.release_held": {"queue": "zapa.maintenance"},
    "zapa.reconcile": {"queue": "zapa.maintenance"},
    "zapa.health_check": {"queue": "zapa.maintenance"},
    "zapa.recover_events": {"queue": "zapa.maintenance"},
    "zapa.handle_event": {"queue": "zapa.events"},
}
task_create_missing_queues = False

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None

# At-least-once: ack after the task ran, requeue what a killed pool child was running.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

worker_pool = "threads"
# A message that cannot be run is logged without its body and kept as a dead letter.
worker_consumer = "workers.consumer:QuietConsumer"
worker_concurrency = _settings.worker_concurrency
# Task events for Flower and `celery events`: received, started, succeeded, failed, retried.
# Arguments reach them only as the redacted argsrepr/kwargsrepr of each message. No
# task-sent events: the hot paths publish with one LPUSH, not through Celery's producer.
worker_send_task_events = True
task_send_sent_event = False

# The schedule and its lock live in Redis: a second beat started by mistake waits for the
# lock instead of running every periodic task twice. RedBeat's scheduler, except that a tick
# which cannot reach Redis waits and tries again instead of ending beat.
beat_scheduler = "workers.scheduler:SteadyRedBeatScheduler"
redbeat_redis_url = _settings.redis_url
redbeat_redis_options: dict[str, object] = {"socket_timeout": 5, "socket_connect_timeout": 5}
if _sentinel is not None:
    # RedBeat's Sentinel form: a redis-sentinel:// URL (its scheme says Sentinel, its banner
    # shows the first one) and the rest in the options.
    redbeat_redis_url = "redis-sentinel://{}:{}".format(*_sentinel.sentinels[0])
    redbeat_redis_options = {
        "sentinels": list(_sentinel.sentinels), "service_name": _redis.master_name,
        "db": _sentinel.db, "password": _sentinel.password, "username": _sentinel.username,
        "socket_timeout": 5, "sentinel_kwargs": _sentinel_kwargs}
redbeat_key_prefix = keys.BEAT_PREFIX
redbeat_lock_key = keys.BEAT_LOCK
# A standby beat takes over this long after the lock holder died.
redbeat_lock_timeout = 30
beat_max_loop_interval = 5

beat_schedule = {
    "reconcile-bridge": {
        "task": "zapa.reconcile",
        "schedule": _settings.reconcile_interval,
        "options": {"queue": "zapa.maintenance", "expires": _settings.reconcile_interval},
    },
    # One poll of GET /events at a time: a stale entry expires, and the poll takes a lock.
    "recover-events": {
        "task": "zapa.recover_events",
        "schedule": _settings.events_poll_interval,
        "options": {"queue": "zapa.maintenance", "expires": _settings.events_poll_interval},
    },
    "health-check": {
        "task": "zapa.health_check",
        "schedule": _settings.health_interval,
        "options": {"queue": "zapa.maintenance", "expires": _settings.health_interval},
    },
}
