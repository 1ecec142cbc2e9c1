"""A replicated Redis on loopback for the local stack and the tests: a master, one replica
and three Sentinels (quorum 2), each a `redis-server` child on a free port (the Sentinels
are the same binary in sentinel mode).

Sentinel declares a master down after `down_after` ms without an answer, so the tests can
fail over in about two seconds; production keeps Sentinel's own default (30 s) or what the
operator tunes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import redis

from zapa_bridge.devtools.embedded_redis import EmbeddedRedis
from zapa_bridge.store.redis_endpoint import DEFAULT_MASTER

SENTINELS = 3
QUORUM = 2


class ReplicatedServer(EmbeddedRedis):
    """A data server of the set: a replica's first sync starts at once (Redis waits 5 s by
    default, for more replicas to share it)."""

    def argv(self) -> list[str]:
        return [*super().argv(), "--repl-diskless-sync-delay", "0"]


class EmbeddedReplica(ReplicatedServer):
    """A redis-server that starts as the replica of `master_port`."""

    def __init__(self, master_port: int, *, persistent: bool, directory: str) -> None:
        super().__init__(persistent=persistent, directory=directory)
        self.master_port = master_port

    def argv(self) -> list[str]:
        return [*super().argv(), "--replicaof", "127.0.0.1", str(self.master_port)]


class EmbeddedSentinel(EmbeddedRedis):
    """redis-server in sentinel mode, watching `master_port` under `master_name`. Sentinel
    rewrites its configuration file as it learns, so each has one of its own."""

    def __init__(self, master_port: int, *, master_name: str, down_after: int,
                 directory: str) -> None:
        super().__init__(directory=directory)
        self.master_port = master_port
        self.master_name = master_name
        self.down_after = down_after

    def argv(self) -> list[str]:
        config = Path(self.directory) / f"sentinel-{self.port}.conf"
        name = self.master_name
        config.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", "daemonize no", f"dir {self.directory}",
            "loglevel warning",
            f"sentinel monitor {name} 127.0.0.1 {self.master_port} {QUORUM}",
            f"sentinel down-after-milliseconds {name} {self.down_after}",
            f"sentinel failover-timeout {name} {max(3 * self.down_after, 3000)}",
            f"sentinel parallel-syncs {name} 1", ""]))
        return [super().argv()[0], str(config), "--sentinel"]


class ReplicatedRedis:
    """Master, replica and three Sentinels; `url` is REDIS_URL in the Sentinel form."""

    def __init__(self, *, master_name: str = DEFAULT_MASTER, down_after: int = 1000,
                 persistent: bool = False, directory: str | None = None) -> None:
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="zapa-redis-ha-")
        root = Path(directory or self._tmp.name)  # type: ignore[union-attr]
        for name in ("master", "replica", "sentinels"):
            (root / name).mkdir(parents=True, exist_ok=True)
        self.master_name = master_name
        self.master = ReplicatedServer(persistent=persistent, directory=str(root / "master"))
        self.replica = EmbeddedReplica(self.master.port, persistent=persistent,
                                       directory=str(root / "replica"))
        self.sentinels = [EmbeddedSentinel(self.master.port, master_name=master_name,
                                           down_after=down_after,
                                           directory=str(root / "sentinels"))
                          for _ in range(SENTINELS)]

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels) + "/0"

    @property
    def servers(self) -> list[EmbeddedRedis]:
        """The two data servers, whichever is master now."""
        return [self.master, self.replica]

    def start(self) -> ReplicatedRedis:
        self.master.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_replicated()
        return self

    def wait_replicated(self, timeout: float = 10.0) -> None:
        """Until a write on the master is confirmed by a replica. A replica the master
        already lists as online may take most of a second to confirm its first one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.replicas_online() and self._confirms_a_write():
                return
            time.sleep(0.05)
        raise RuntimeError("the replica did not sync with the master")

    def _confirms_a_write(self) -> bool:
        master = self.current_master()
        if master is None:
            return False
        try:
            with redis.Redis(port=master.port, socket_timeout=1) as client:
                pipe = client.pipeline(transaction=False)
                pipe.set("zapa:replication-probe", "1", ex=60)
                pipe.wait(1, 200)
                return bool(pipe.execute()[1] >= 1)
        except redis.RedisError:
            return False

    def current_master(self) -> EmbeddedRedis | None:
        """The server the Sentinels name as master now (None if they name none of ours)."""
        for sentinel in self.sentinels:
            try:
                with redis.Redis(port=sentinel.port, socket_timeout=0.5) as client:
                    _, port = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
            except (redis.RedisError, TypeError, ValueError):
                continue
            for server in self.servers:
                if int(port) == server.port:
                    return server
        return None

    def replicas_online(self) -> int:
        """Replicas the current master counts as online."""
        master = self.current_master()
        if master is None or master.process is None:
            return 0
        try:
            with redis.Redis(port=master.port, socket_timeout=0.5) as client:
                info = client.info("replication")
        except redis.RedisError:
            return 0
        return sum(1 for key, value in info.items()
                   if key.startswith("slave") and isinstance(value, dict)
                   and value.get("state") == "online")

    def close(self) -> None:
        for server in [*self.sentinels, self.replica, self.master]:
            server.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ReplicatedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

