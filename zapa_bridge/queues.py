"""The broker's queues, by name, and which priority goes to which. Import-light on purpose:
the core publishes to them and celeryconfig declares them."""

from __future__ import annotations

import enum

from zapa_bridge.outbound.messages import Priority


class Queue(enum.StrEnum):
    MAINTENANCE = "zapa.maintenance"
    EVENTS = "zapa.events"
    SEND_HIGH = "zapa.send.high"
    SEND_DEFAULT = "zapa.send.default"
    SEND_LOW = "zapa.send.low"


SEND_QUEUE_BY_PRIORITY = {
    Priority.HIGH: Queue.SEND_HIGH,
    Priority.DEFAULT: Queue.SEND_DEFAULT,
    Priority.LOW: Queue.SEND_LOW,
}

# The order a worker polls in (strict, see celeryconfig): periodic upkeep and bridge events
# are small and must not starve behind a send backlog, then sends by priority.
CONSUME_ORDER = (Queue.MAINTENANCE, Queue.EVENTS, Queue.SEND_HIGH, Queue.SEND_DEFAULT,
                 Queue.SEND_LOW)

# Inbound handlers shipped here; when ZAPA_INBOUND_TASK names one, our workers consume
# ZAPA_INBOUND_QUEUE too. Any other task there is Zapa's, consumed by Zapa's own workers.
BUILTIN_INBOUND_TASKS = frozenset({"zapa.echo"})
