"""`GET /metrics`: Prometheus text that parses, with counters and gauges that follow real
traffic (sends through a real worker to the zapw stub, webhooks through the app, queued
messages and dead letters in the suite's Redis)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import recipient, wait_until
from tests.zapw_stub import ZapwStub
from workers.tasks import send_message, services
from zapa_bridge.config import load_settings
from zapa_bridge.ops.metrics import Metrics
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.store import keys
from zapa_bridge.web import create_app

pytestmark = pytest.mark.slow

TO = "5511988887777"
WEBHOOK_TOKEN = os.environ["ZAPA_WEBHOOK_TOKEN"]
RECEIVED = {
    "sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
    "timestamp": 1795599514484,
    "data": {"from": f"{TO}@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
             "messageId": "3EB0AAAA1111", "timestamp": 1795599514000, "isGroup": False,
             "type": "text", "text": "Hello there!"},
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def app(redis_db: Any, zapw: ZapwStub) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "SETTINGS": load_settings(ZAPW_URL=zapw.url)})
    yield app
    app.extensions["zapa"].bridge.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def scrape(client: FlaskClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.mimetype == "text/plain"
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True))
            for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_when(client: FlaskClient, name: str, at_least: float, **labels: str) -> Samples:
    """A scrape once `name` reached `at_least`: a worker counts just after it records."""
    def reached() -> Samples | None:
        samples = scrape(client)
        return samples if value(samples, name, **labels) >= at_least else None

    return wait_until(reached, what=f"{name}{labels} >= {at_least}")


def wait_status(message_id: str, status: MessageStatus) -> None:
    wait_until(lambda: (r := services().store.get(message_id)) is not None
               and r.status == status, what=f"{message_id} {status}")


def test_metrics_parse_as_prometheus_text_with_every_documented_family(client):
    answer = client.get("/metrics")
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    families = {family.name: family.type for family in
                text_string_to_metric_families(answer.get_data(as_text=True))}
    assert families == {
        "zapa_sends": "counter", "zapa_send_retries": "counter",
        "zapa_possible_duplicate_sends": "counter", "zapa_webhooks": "counter",
        "zapa_rate_limited_sends": "counter", "zapa_deferred_messages": "gauge",
        "zapa_send_latency_seconds": "histogram", "zapa_queue_depth": "gauge",
        "zapa_queue_oldest_age_seconds": "gauge", "zapa_held_messages": "gauge",
        "zapa_dead_letters": "gauge", "zapa_bridge_up": "gauge",
        "zapa_inbound_dead_letters": "gauge", "zapa_inbound_dead_lettered": "counter",
        "zapa_webhook_events_recovered": "counter", "zapa_inbound_bursts": "counter",
        "zapa_inbound_coalesced_messages": "counter", "zapa_inbound_bursts_waiting": "gauge",
        "zapa_paced_sends": "counter", "zapa_daily_limit_holds": "counter",
    }


def test_metrics_need_no_token(client):
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 200


def test_a_real_send_counts_one_sent_and_one_latency_observation(client, start_worker, zapw):
    zapw.add_session("s1")
    before = scrape(client)
    start_worker()
    wait_status(send_message.delay(to=TO, text="hi", session="s1").id, MessageStatus.SENT)
    sent_before = value(before, "zapa_sends_total", outcome="sent")
    after = scrape_when(client, "zapa_sends_total", sent_before + 1, outcome="sent")
    assert value(after, "zapa_sends_total", outcome="sent") - sent_before == 1
    assert (value(after, "zapa_send_latency_seconds_count")
            - value(before, "zapa_send_latency_seconds_count")) == 1
    assert value(after, "zapa_send_latency_seconds_sum") > value(
        before, "zapa_send_latency_seconds_sum")
    assert value(after, "zapa_send_latency_seconds_bucket", le="+Inf") == value(
        after, "zapa_send_latency_seconds_count")


def test_a_retried_send_counts_one_retry(client, start_worker, zapw):
    zapw.add_session("s1")
    zapw.fail_next(1, 500)
    before = scrape(client)
    start_worker()
    wait_status(send_message.delay(to=TO, text="hi", session="s1").id, MessageStatus.SENT)
    after = scrape_when(client, "zapa_sends_total",
                        value(before, "zapa_sends_total", outcome="sent") + 1, outcome="sent")
    assert value(after, "zapa_send_retries_total") - value(
        before, "zapa_send_retries_total") == 1
    assert (value(after, "zapa_sends_total", outcome="sent")
            - value(before, "zapa_sends_total", outcome="sent")) == 1
    # Both bridge calls were timed, the failed one too.
    assert (value(after, "zapa_send_latency_seconds_count")
            - value(before, "zapa_send_latency_seconds_count")) == 2


def test_an_accepted_webhook_counts_under_its_event_type_and_a_duplicate_apart(client):
    labels = {"event_type": "message.received"}
    before = scrape(client)
    for _ in range(2):
        answer = client.post("/api/v1/webhooks/whatsapp", json=RECEIVED,
                             query_string={"token": WEBHOOK_TOKEN})
        assert answer.status_code == 200
    after = scrape(client)
    assert (value(after, "zapa_webhooks_total", outcome="accepted", **labels)
            - value(before, "zapa_webhooks_total", outcome="accepted", **labels)) == 1
    assert (value(after, "zapa_webhooks_total", outcome="duplicate", **labels)
            - value(before, "zapa_webhooks_total", outcome="duplicate", **labels)) == 1


def test_events_recovered_from_zapws_list_count_by_session(client, redis_db):
    redis_db.hincrby(keys.METRICS_RECOVERED, "A", 3)
    redis_db.hincrby(keys.METRICS_RECOVERED, "B", 1)
    samples = scrape(client)
    assert value(samples, "zapa_webhook_events_recovered_total", session="A") == 3
    assert value(samples, "zapa_webhook_events_recovered_total", session="B") == 1


def test_paced_waits_and_daily_limit_holds_are_counted(client, redis_db):
    metrics = Metrics(redis_db)
    metrics.count_paced()
    metrics.count_paced()
    metrics.count_daily_held()
    samples = scrape(client)
    assert (value(samples, "zapa_paced_sends_total"),
            value(samples, "zapa_daily_limit_holds_total")) == (2, 1)


def test_a_burst_counts_once_with_its_messages_and_waits_in_the_gauge_until_handed_on(
        redis_db, zapw):
    app = create_app({"TESTING": True, "SETTINGS": load_settings(
        ZAPW_URL=zapw.url, ZAPA_INBOUND_COALESCE="1")})
    client = app.test_client()
    try:
        for number, sender in enumerate([TO, TO, TO, recipient(1)]):
            event = {**RECEIVED, "data": {**RECEIVED["data"], "messageId": f"M{number}",
                                          "from": f"{sender}@s.whatsapp.net"}}
            answer = client.post("/api/v1/webhooks/whatsapp", json=event,
                                 query_string={"token": WEBHOOK_TOKEN})
            assert answer.json == {"status": "accepted"}
        before = scrape(client)
        assert value(before, "zapa_inbound_bursts_waiting") == 2
        assert value(before, "zapa_inbound_bursts_total") == 0

        assert app.extensions["zapa"].bursts.move_due(time.time() + 2) == 2
        after = scrape(client)
        # Three messages of one sender are one burst; the other sender's lone message is none.
        assert value(after, "zapa_inbound_bursts_total") == 1
        assert value(after, "zapa_inbound_coalesced_messages_total") == 3
        assert value(after, "zapa_inbound_bursts_waiting") == 0
    finally:
        app.extensions["zapa"].bridge.close()


def test_queue_depth_shows_messages_waiting_with_no_worker(client):
    assert value(scrape(client), "zapa_queue_depth", queue="zapa.send.default") == 0
    for n in range(3):
        send_message.delay(to=recipient(n), text="x", session="s1")
    send_message.delay(to=recipient(3), text="x", session="s1", priority="low")
    samples = scrape(client)
    assert value(samples, "zapa_queue_depth", queue="zapa.send.default") == 3
    assert value(samples, "zapa_queue_depth", queue="zapa.send.low") == 1
    assert value(samples, "zapa_queue_depth", queue="zapa.send.high") == 0
    assert value(samples, "zapa_queue_oldest_age_seconds", queue="zapa.send.default") >= 0


def test_dead_letters_gauge_follows_the_dead_letters(client, start_worker):
    assert value(scrape(client), "zapa_dead_letters") == 0
    start_worker()
    ids = [send_message.delay(to=TO, text="x", session="ghost").id for _ in range(2)]
    for message_id in ids:
        wait_status(message_id, MessageStatus.FAILED)
    samples = scrape_when(client, "zapa_sends_total", 2, outcome="failed")
    assert value(samples, "zapa_dead_letters") == 2
    assert value(samples, "zapa_sends_total", outcome="failed") == 2

    services().dead_letters.purge()
    assert value(scrape(client), "zapa_dead_letters") == 0


def test_held_messages_gauge_counts_per_session(client, start_worker, zapw):
    zapw.add_session("s1", connected=False)
    start_worker()
    wait_status(send_message.delay(to=TO, text="x", session="s1").id, MessageStatus.HELD)
    samples = scrape_when(client, "zapa_sends_total", 1, outcome="held")
    assert value(samples, "zapa_held_messages", session="s1") == 1
    assert value(samples, "zapa_sends_total", outcome="held") == 1


def test_bridge_up_follows_the_last_health_check(app, client, zapw):
    assert value(scrape(client), "zapa_bridge_up") == 0
    zapw.add_session("s1")
    app.extensions["zapa_web"].health_checker().run()
    assert value(scrape(client), "zapa_bridge_up") == 1
