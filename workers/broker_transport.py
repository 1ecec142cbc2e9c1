"""kombu's Redis and Sentinel transports, with one fix: a channel whose connection is gone
says so with a connection error.

When the broker connection drops, Celery's consumer detaches the old connection's
transport and then closes it; kombu 5.7's Redis channel, closing, restores its unacknowledged
messages through that transport, and the acks and rejects of tasks that were still running
go through it too. Each then fails with an `AttributeError` in `_connparams`, which neither
Celery nor kombu treats as a connection error: the worker stopped with "Unrecoverable
error" whenever Redis restarted or failed over while a message was in flight (celery#10205;
no kombu release fixes it). A `redis.ConnectionError` instead is what both expect of a dead
connection: the consumer reconnects, and an ack or reject that could not be made is logged.
Nothing is lost: the messages stay in kombu's unacked hash, which redelivers them after the
visibility timeout, and a redelivered send is never sent twice (its record says how far it
got).

`install()` points the URL schemes at these classes, so a Sentinel connection that moves
to its next Sentinel (kombu then resolves the transport by scheme again) keeps the fix.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

DETACHED = "the broker connection this channel used is closed"


class _Detachable:
    """Mixed into a kombu Redis channel (whose `connection` is its transport)."""

    connection: Any

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError(DETACHED)
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[misc]
        return params


class Channel(_Detachable, kombu_redis.Channel):
    pass


class SentinelChannel(_Detachable, kombu_redis.SentinelChannel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


def install() -> None:
    """Make `redis://`, `rediss://` and `sentinel://` broker URLs use these transports."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["sentinel"] = f"{__name__}:SentinelTransport"
