"""The system a chaos scenario runs against, and the questions scenarios ask of it.

All real and on loopback: gunicorn serving the web app, Celery worker and beat processes,
a Redis, and the zapw simulator in this process with sessions A and B connected, posting its
webhooks to the web process. State is read straight from the stack's Redis, which may be
another than the suite's (the Redis restart scenario runs its own, with AOF on).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import redis

from tests.chaos.ledger import Conversation, Ledger
from tests.helpers import wait_until
from tests.processes import Beat, Web, Worker
from zapa_bridge.bridge.sessions import SessionRegistry
from zapa_bridge.devtools.embedded_redis import free_port
from zapa_bridge.outbound.status_store import (
    DEAD_STATUSES,
    FINAL_STATUSES,
    MessageStatus,
    StatusStore,
)
from zapa_bridge.queues import CONSUME_ORDER
from zapa_bridge.simulator import Simulator, SimulatorConfig
from zapa_bridge.store.connection import redis_client

T = TypeVar("T")
SESSIONS = ("A", "B")
PHONES = {"A": "5511911110001", "B": "5511922220002"}
WEBHOOK_PATH = "/api/v1/webhooks/whatsapp"
# Where a message can wait outside its record: the queues, kombu's unacked hash (with a
# worker, or a retry's countdown), and the deferred index of rate limits and turns.
QUEUES = (*CONSUME_ORDER, "zapa.inbound")
UNACKED = "zapa:unacked"
SUPERVISE_EVERY = 0.2  # s between looks for processes that exited
DUE = "zapa:due"


@dataclass
class ChaosStack:
    sim: Simulator
    web: Web
    redis_url: str
    tmp_path: Path
    worker_env: dict[str, str]
    beat: Beat | None = None
    workers: list[Worker] = field(default_factory=list)  # the live ones, supervised
    killed: list[Worker] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)  # processes that died and came back
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.redis_url)

    @cached_property
    def store(self) -> StatusStore:
        return StatusStore(self.redis, retention=3600)  # only read here

    @cached_property
    def sessions(self) -> SessionRegistry:
        return SessionRegistry(self.redis)

    # -- processes ---------------------------------------------------------------------------

    def start_worker(self) -> Worker:
        env = {**os.environ, "REDIS_URL": self.redis_url, "ZAPW_URL": self.sim.url,
               **self.worker_env}
        worker = Worker(self.tmp_path / f"worker{len(self.workers) + len(self.killed)}.log",
                        env)
        worker.start()
        with self._lock:
            self.workers.append(worker)
        return worker

    def kill_worker(self) -> None:
        """SIGKILL every running worker, as the OOM killer would (no one restarts them)."""
        with self._lock:
            killed, self.workers = self.workers, []
        for worker in killed:
            if worker.process is not None and worker.process.poll() is None:
                worker.kill()
        self.killed.extend(killed)

    def kill_one_worker(self) -> Worker:
        """SIGKILL the oldest running worker alone; the others go on (no one restarts it)."""
        with self._lock:
            victim = self.workers.pop(0)
        victim.kill()
        self.killed.append(victim)
        return victim

    def supervise(self) -> None:
        """Restart any process of the stack that exits, as a process manager with
        restart-on-exit (systemd's Restart=always, a container's restart policy) would."""
        def watch() -> None:
            while not self._stopping.wait(SUPERVISE_EVERY):
                with self._lock:  # a worker killed on purpose has left `workers` first
                    for process in [self.web, self.beat, *self.workers]:
                        if (process is not None and process.process is not None
                                and process.process.poll() is not None
                                and not self._stopping.is_set()):
                            self.restarts.append(process.log_path.stem)
                            with contextlib.suppress(AssertionError):  # died again: next look
                                process.start()

        self._supervisor = threading.Thread(target=watch, daemon=True, name="supervisor")
        self._supervisor.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=60)
        for process in [*self.workers, self.beat, self.web]:
            if process is not None:
                process.stop()
        self.sim.stop()

    # -- what the stack's Redis says ----------------------------------------------------------

    def user_writes(self, user: Conversation, index: int, ledger: Ledger) -> str:
        """`user` writes message `index` on WhatsApp (zapw posts it to us); the ledger
        expects its echo. Returns the inbound id."""
        event = self.sim.inject_inbound(user.session, sender=user.to, text=user.text(index))
        inbound_id = f"{user.session}:{event['data']['messageId']}"
        ledger.add(user, index, inbound_id, text=f"echo: {user.text(index)}")
        return inbound_id

    def ids_in(self, ids: Iterable[str], status: MessageStatus) -> set[str]:
        return {record.id for record in self.store.get_many(ids) if record.status is status}

    def waiting_elsewhere(self) -> int:
        """Messages in a queue, with a worker, or deferred: zero once the system is idle."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(queue)
        pipe.hlen(UNACKED)
        pipe.zcard(DUE)
        return sum(pipe.execute())

    def settle(self, ledger: Ledger, timeout: float,
               ids: Callable[[], list[str]] | None = None) -> bool:
        """Wait until every record (of `ids`, else of the ledger's messages) is final,
        nothing waits anywhere (so no copy can still come) and every message of `ledger` was
        accepted by the bridge, or one became a dead letter; False at `timeout`."""
        expected = ledger.texts()
        record_ids = ids or ledger.ids

        def settled() -> bool:
            wanted = record_ids()
            records = self.store.get_many(wanted)
            if (len(records) < len(wanted) or self.waiting_elsewhere()
                    or any(r.status not in FINAL_STATUSES for r in records)):
                return False
            if any(r.status in DEAD_STATUSES for r in records):
                return True  # a dead letter is never sent: waiting longer changes nothing
            return expected <= {send.body.get("text") for send in self.sim.sends()}

        return within(settled, timeout, interval=0.2) is not None

    def wait_session(self, session: str, status: str, timeout: float = 15.0) -> None:
        wait_until(lambda: (state := self.sessions.get(session)) is not None
                   and state.status == status, timeout=timeout,
                   what=f"session {session} {status} in the registry")


def start_stack(tmp_path: Path, *, redis_url: str, web_redis_url: str | None = None,
                worker_env: dict[str, str] | None = None,
                env: dict[str, str] | None = None,
                reconcile_interval: str = "1") -> ChaosStack:
    """Web, one worker, beat (reconciling every `reconcile_interval` s) and the simulator,
    in the order a deployment starts them; returns once sessions A and B are connected in
    the registry. The web process reaches Redis at `web_redis_url` when given (through a
    gate); `env` is for every process, `worker_env` for the workers alone."""
    zapw_port = free_port()
    zapw_url = f"http://127.0.0.1:{zapw_port}"
    base = {**os.environ, **(env or {}), "REDIS_URL": redis_url, "ZAPW_URL": zapw_url}
    web = Web(tmp_path / "web.log", {
        **base, "REDIS_URL": web_redis_url or redis_url,
        "ZAPA_SPOOL_PATH": str(tmp_path / "spool.sqlite3"), "ZAPA_SPOOL_DRAIN_INTERVAL": "0.2"})
    webhook_url = f"{web.url}{WEBHOOK_PATH}?token={os.environ['ZAPA_WEBHOOK_TOKEN']}"
    # zapw's mock mode: no receipts, so the webhooks are the ones each scenario makes.
    sim = Simulator(SimulatorConfig(
        port=zapw_port, webhook_url=webhook_url, sessions=SESSIONS, phones=PHONES,
        connect_delay=0.05, webhook_retry_delay=0.05, flavour="mock"), seed=7)
    stack = ChaosStack(sim, web, redis_url, tmp_path, {**(env or {}), **(worker_env or {})})
    try:
        web.start()
        stack.start_worker()
        stack.beat = Beat(tmp_path / "beat.log",
                          {**base, "ZAPA_RECONCILE_INTERVAL": reconcile_interval})
        stack.beat.start()
        sim.start()
        for session in SESSIONS:
            stack.wait_session(session, "connected")
        stack.supervise()
    except BaseException:
        stack.stop()
        raise
    return stack


def within(check: Callable[[], T], timeout: float, interval: float = 0.1) -> T | None:
    """`check`'s first truthy answer within `timeout` s, or None: a guarantee that may fail
    is reported with the run's figures before it is asserted."""
    try:
        return wait_until(check, timeout=timeout, interval=interval)
    except AssertionError:
        return None
