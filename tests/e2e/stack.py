"""The running e2e stack and the few questions the tests ask of it (this module holds no tests).

Everything is real and on loopback: gunicorn serving the web app, a Celery worker process,
the suite's Redis, and the zapw simulator in this process posting webhooks over HTTP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from tests.helpers import wait_until
from tests.processes import Web, Worker
from workers.tasks import services
from zapa_bridge.outbound.status_store import MessageRecord, MessageStatus
from zapa_bridge.simulator import SentMessage, Simulator

S = MessageStatus


@dataclass
class Stack:
    sim: Simulator
    web: Web
    worker: Worker
    webhook_url: str  # what the simulator posts to (zapw's WEBHOOK_URL)

    @staticmethod
    def record(message_id: str) -> MessageRecord | None:
        return services().store.get(message_id)

    def wait_status(self, message_id: str, status: MessageStatus,
                    timeout: float = 20.0) -> MessageRecord:
        """The record of `message_id` once its status is `status`."""
        return wait_until(lambda: (r := self.record(message_id)) is not None
                          and r.status is status and r,
                          timeout=timeout, what=f"message {message_id} {status}")

    def wait_all(self, message_ids: Iterable[str], statuses: Iterable[MessageStatus],
                 timeout: float = 30.0) -> list[MessageRecord]:
        """The records of `message_ids` once every one has one of `statuses`."""
        ids, wanted = list(message_ids), frozenset(statuses)

        def check() -> list[MessageRecord] | None:
            records = services().store.get_many(ids)
            done = len(records) == len(ids) and all(r.status in wanted for r in records)
            return records if done else None

        return wait_until(check, timeout=timeout, interval=0.1,
                          what=f"{len(ids)} messages {'/'.join(sorted(wanted))}")

    @staticmethod
    def wait_session(session: str, status: str, timeout: float = 10.0) -> None:
        """Until the session registry (fed by session webhooks) says `status`."""
        wait_until(lambda: (state := services().sessions.get(session)) is not None
                   and state.status == status, timeout=timeout,
                   what=f"session {session} {status} in the registry")

    def wait_sends(self, count: int, session: str | None = None,
                   timeout: float = 20.0) -> list[SentMessage]:
        """The sends the simulator accepted, once there are at least `count`."""
        return wait_until(lambda: (sends := self.sim.sends(session)) and len(sends) >= count
                          and sends, timeout=timeout,
                          what=f"{count} sends accepted on {session or 'any session'}")

    def sent_texts(self, session: str | None = None) -> Counter[str]:
        """How many times the simulator accepted each text."""
        return Counter(send.body["text"] for send in self.sim.sends(session))


def statuses(record: MessageRecord) -> list[str]:
    return [entry["status"] for entry in record.history]
