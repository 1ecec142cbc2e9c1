"""A task message made ready for the broker, so that putting it on its queue is one Redis
command (or one step of a Lua script) rather than a round through the Celery producer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zapa_bridge.outbound.messages import OutboundMessage


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """`payload` goes on the Redis list `queue` with LPUSH, as the broker transport would."""

    queue: str
    payload: str




PrepareSend = Callable[[str, OutboundMessage], PreparedMessage]
"""The `send_message` task message of one outbound message under the given id."""
