"""One benchmark run's surroundings: a private Redis on a free port, the settings every
process gets, the processes started, and the commands that start ours and the baselines'
exactly as the Procfile does."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.processes import Child, Children, http_ready, log_says
from zapa_bridge.devtools.embedded_redis import EmbeddedRedis, free_port
from zapa_bridge.web.webhooks import WEBHOOK_PATH

OURS_APP = "workers.celery_app"
BASELINE_APP = "bench.baseline_app"
OURS_WSGI = "zapa_bridge.web:create_app()"
BASELINE_WSGI = "bench.baseline_web:app"


@dataclass
class BenchEnv:
    log_dir: Path
    redis_server: EmbeddedRedis
    children: Children
    workers: int
    simulator_port: int
    webhook_token: str
    admin_token: str

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.simulator_port}"

    def redis(self) -> redis.Redis:
        # Long timeouts: emptying or measuring a million waiting messages takes seconds.
        return redis.Redis.from_url(self.redis_url, decode_responses=True,
                                    socket_timeout=600, socket_connect_timeout=5)

    def flush(self) -> None:
        """Start a benchmark from an empty Redis (ours alone: nobody else uses it)."""
        client = self.redis()
        client.flushall()
        client.config_resetstat()

    def child_env(self, **extra: str) -> dict[str, str]:
        """Production settings, on loopback, with rate limits off."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("ZAPA_", "ZAPW_", "WEB_CONCURRENCY"))}
        env.update({
            "REDIS_URL": self.redis_url,
            "ZAPW_URL": self.simulator_url,
            "ZAPA_ENV": "production",
            "ZAPA_WEBHOOK_TOKEN": self.webhook_token,
            "ZAPA_ADMIN_TOKEN": self.admin_token,
            "ZAPA_RATE_LIMIT": "off",
            "ZAPA_LOG_LEVEL": "INFO",
            "ZAPA_SPOOL_PATH": str(self.log_dir / "webhook-spool.sqlite3"),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra)
        return env

    def webhook_url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}{WEBHOOK_PATH}?token={self.webhook_token}"

    # -- the processes, as the Procfile starts them ----------------------------------------

    def start_workers(self, app: str, tag: str, **extra: str) -> list[Child]:
        """`self.workers` worker processes of `app`, each with the Procfile's options."""
        commands = [(f"{tag}-worker{index}", worker_argv(app, f"{tag}{index}"))
                    for index in range(1, self.workers + 1)]
        return self.children.start_together(commands, self.child_env(**extra),
                                            log_says(" ready."))

    def start_web(self, wsgi_app: str, tag: str, **extra: str) -> tuple[Child, int]:
        """gunicorn with gunicorn.conf.py serving `wsgi_app` on a free port."""
        port = free_port()
        env = self.child_env(ZAPA_WEB_BIND=f"127.0.0.1:{port}", **extra)
        child = self.children.start(f"{tag}-web", web_argv(wsgi_app), env,
                                    http_ready(f"http://127.0.0.1:{port}/healthz"))
        return child, port


def worker_argv(app: str, name: str) -> list[str]:
    """The Procfile's `worker` line (a node name added so that several can run)."""
    return [sys.executable, "-m", "celery", "-A", app, "worker", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "-n", f"bench-{name}@%h"]


def web_argv(wsgi_app: str) -> list[str]:
    """The Procfile's `web` line."""
    return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", wsgi_app]


@contextmanager
def bench_env(log_dir: Path, workers: int) -> Iterator[BenchEnv]:
    """A private Redis and a process registry; everything is stopped on the way out."""
    log_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis().start()
    children = Children(log_dir)
    try:
        yield BenchEnv(log_dir=log_dir, redis_server=server, children=children,
                       workers=workers, simulator_port=free_port(),
                       webhook_token=secrets.token_urlsafe(32),
                       admin_token=secrets.token_urlsafe(32))
    finally:
        children.stop_all()
        server.close()
