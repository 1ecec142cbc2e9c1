"""The receipt webhooks zapw posts after it accepted a send, by the flavour simulated.

zapw maps a Baileys `messages.update` to an event by `update.status`, but Baileys puts the
ack level in `update.update.status`: with a real phone every receipt (server ack, delivered,
read) therefore arrives as `message.sent` without `status`. Its mock client emits none. A
fixed zapw (our `auto_status`) would post each with its event type and code.
"""

from __future__ import annotations

from dataclasses import dataclass

from zapa_bridge.simulator.config import SimulatorConfig

# Baileys' WebMessageInfo.Status codes carried by message.sent/delivered/read.
STATUS_CODES = {"sent": 2, "delivered": 3, "read": 4}


@dataclass(frozen=True, slots=True)
class Receipt:
    """One webhook to post about a sent message, `delay` s after zapw accepted it."""

    delay: float
    event_type: str
    status: int | None  # None: the `status` key is absent, as zapw's undefined

    def data(self, message_id: str) -> dict[str, object]:
        body: dict[str, object] = {"messageId": message_id}
        if self.status is not None:
            body["status"] = self.status
        return body


def receipts_after_send(config: SimulatorConfig) -> tuple[Receipt, ...]:
    """What zapw posts after one accepted send, earliest first."""
    delays = {"sent": 0.0, "delivered": config.delivered_delay, "read": config.read_delay}
    if config.auto_status:
        fixed = ("sent", *config.auto_status)
        return tuple(Receipt(delays[ack], f"message.{ack}", STATUS_CODES[ack]) for ack in fixed)
    if config.flavour == "mock":
        return ()
    return tuple(Receipt(delays[ack], "message.sent", None) for ack in STATUS_CODES)
