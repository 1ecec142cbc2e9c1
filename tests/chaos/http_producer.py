"""A service enqueuing over the HTTP API, as the chaos scenarios that break Redis need one:
its calls are refused while Redis cannot take them, and it retries each with its
Idempotency-Key until it is accepted."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import requests

from tests.chaos.ledger import Conversation, Ledger

RATE = 50.0  # enqueued per second
GIVE_UP = 30.0  # s a producer keeps retrying one message


class HttpProducer(threading.Thread):
    """A service enqueuing through POST /api/v1/integration/messages, one message at a time
    in conversation order, retrying each with its Idempotency-Key until it is accepted."""

    def __init__(self, base_url: str, plan: Sequence[tuple[Conversation, int]],
                 ledger: Ledger, rate: float = RATE) -> None:
        super().__init__(daemon=True, name="http-producer")
        self.rate = rate
        self.url = f"{base_url}/api/v1/integration/messages"
        self.plan = plan
        self.ledger = ledger
        self.refused = 0  # answers other than 202, and requests that got no answer
        self.gave_up: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            self.error = exc

    def _produce(self) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {os.environ['ZAPA_ADMIN_TOKEN']}"
        started = time.monotonic()
        for k, (conversation, index) in enumerate(self.plan):
            time.sleep(max(0.0, started + k / self.rate - time.monotonic()))  # a steady pace
            body = {"to": conversation.to, "text": conversation.text(index),
                    "session": conversation.session}
            key = f"chaos:{conversation.text(index)}"
            deadline = time.monotonic() + GIVE_UP
            while True:
                try:
                    answer = http.post(self.url, json=body, headers={"Idempotency-Key": key},
                                       timeout=15)
                    if answer.status_code == 202:
                        self.ledger.add(conversation, index, answer.json()["id"])
                        break
                except requests.RequestException:
                    pass
                self.refused += 1
                if time.monotonic() > deadline:
                    self.gave_up.append(conversation.text(index))
                    break
                time.sleep(0.1)
