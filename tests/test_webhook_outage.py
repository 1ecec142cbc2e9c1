"""A webhook accepted while Redis is down is processed once Redis is back (real HTTP)."""

from __future__ import annotations

import os
import time

import pytest
import redis
import requests

from tests.helpers import wait_until
from tests.processes import Web, Worker
from zapa_bridge.devtools.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.slow

TOKEN = os.environ["ZAPA_WEBHOOK_TOKEN"]


def received(message_id: str, text: str) -> dict:
    return {"sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
            "timestamp": 1795599514484,
            "data": {"from": "5511988887777@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
                     "messageId": message_id, "timestamp": 1700000000000, "isGroup": False,
                     "type": "text", "text": text}}


@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "no-persistence"])
def test_webhook_accepted_during_a_redis_outage_is_processed_after(tmp_path, zapw, persistent):
    zapw.add_session("s1")
    server = EmbeddedRedis(persistent=persistent, directory=str(tmp_path)).start()
    env = {**os.environ, "REDIS_URL": server.url, "ZAPW_URL": zapw.url,
           "ZAPA_SPOOL_PATH": str(tmp_path / "spool.db"), "ZAPA_SPOOL_DRAIN_INTERVAL": "0.2"}
    web = Web(tmp_path / "web.log", env)
    worker = Worker(tmp_path / "worker.log", env)
    try:
        web.start()
        worker.start()
        post = lambda body: requests.post(  # noqa: E731
            f"{web.url}/api/v1/webhooks/whatsapp", params={"token": TOKEN}, json=body,
            timeout=10)
        assert post(received("BEFORE", "before")).json() == {"status": "accepted"}
        wait_until(lambda: len(zapw.sent_to("s1")) == 1, what="echo of the first message")

        server.stop()
        answer = post(received("DURING", "during the outage"))
        assert (answer.status_code, answer.json()) == (200, {"status": "spooled"})
        assert post(received("DURING", "during the outage")).status_code == 200

        server.start()
        wait_until(lambda: len(zapw.sent_to("s1")) >= 2, timeout=40, what="echo after restart")
        texts = [send.body["text"] for send in zapw.sent_to("s1")]
        assert texts == ["echo: before", "echo: during the outage"]
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.exists("zapa:in:s1:DURING") == 1
    finally:
        worker.stop()
        web.stop()
        server.close()


def test_a_burst_spooled_during_a_redis_outage_is_one_echo_once_drained(tmp_path, zapw):
    """Bursts on: the three messages of a burst, spooled (each posted twice) while Redis is
    down, join one burst as the spool drains, and the echo answers them once."""
    zapw.add_session("s1")
    server = EmbeddedRedis(persistent=False, directory=str(tmp_path)).start()
    env = {**os.environ, "REDIS_URL": server.url, "ZAPW_URL": zapw.url,
           "ZAPA_SPOOL_PATH": str(tmp_path / "spool.db"), "ZAPA_SPOOL_DRAIN_INTERVAL": "0.2",
           "ZAPA_INBOUND_COALESCE": "1"}
    web = Web(tmp_path / "web.log", env)
    worker = Worker(tmp_path / "worker.log", env)
    try:
        web.start()
        worker.start()
        server.stop()
        for n, text in enumerate(("hi", "I need", "help with my order")):
            for _ in range(2):  # zapw's retry of a webhook it thought lost
                answer = requests.post(f"{web.url}/api/v1/webhooks/whatsapp",
                                       params={"token": TOKEN}, json=received(f"B{n}", text),
                                       timeout=10)
                assert (answer.status_code, answer.json()) == (200, {"status": "spooled"})

        server.start()
        wait_until(lambda: zapw.sent_to("s1"), timeout=40, what="the burst's echo")
        time.sleep(1.5)  # a window and a half: time for a second hand-on, were there one
        texts = [send.body["text"] for send in zapw.sent_to("s1")]
        assert texts == ["echo: 3 messages as one turn\nhi\nI need\nhelp with my order"]
    finally:
        worker.stop()
        web.stop()
        server.close()
