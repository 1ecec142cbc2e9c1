"""What `zapa-bridge check` shows of Redis: which server is the master (and, with Sentinel,
that the Sentinels named it), and its replicas as the master reports them."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from zapa_bridge.store.connection import probe_client, sentinel_manager
from zapa_bridge.store.redis_endpoint import RedisEndpoint


@dataclass(frozen=True, slots=True)
class Replica:
    address: str
    state: str  # "online" once synced
    lag: int | None  # s since its last acknowledgement


@dataclass(frozen=True, slots=True)
class Topology:
    master: str  # host:port
    role: str  # what the server says it is: "master" unless misconfigured
    sentinels_answering: int | None  # None without Sentinel
    replicas: list[Replica] = field(default_factory=list)


def topology(target: RedisEndpoint, timeout: float = 1.0) -> Topology:
    """Raises redis.RedisError when no master can be reached (MasterNotFoundError: no
    Sentinel knows one)."""
    answering = None
    parts = target.sentinel
    if parts is not None:
        manager = sentinel_manager(target, parts, timeout)
        host, port = manager.discover_master(target.master_name)  # type: ignore[no-untyped-call, unused-ignore]
        answering = sum(1 for sentinel in manager.sentinels if _answers(sentinel))
        address = f"{host}:{port}"
    with probe_client(target, timeout) as client:
        info = client.info("replication")
        if parts is None:
            kwargs = client.connection_pool.connection_kwargs
            address = str(kwargs.get("path")
                          or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}")
    replicas = [Replica(f"{value.get('ip')}:{value.get('port')}", str(value.get("state")),
                        int(value["lag"]) if "lag" in value else None)
                for key, value in sorted(info.items())
                if key.startswith("slave") and isinstance(value, dict)]
    return Topology(address, str(info.get("role")), answering, replicas)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
