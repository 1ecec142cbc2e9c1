"""Tracing: one trace per conversation turn, from the webhook to the receipt, on a real Redis
with a real Celery worker (in this process, so the SDK's in-memory exporter sees its spans)
and zapw over HTTP; nothing configured when tracing is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from celery.contrib.testing.worker import start_worker
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.helpers import wait_until
from tests.zapw_stub import ZapwStub
from workers.celery_app import app as celery_app
from workers.runtime import services
from zapa_bridge import tracing
from zapa_bridge.config import get_settings
from zapa_bridge.outbound.status_store import MessageStatus

ROOT = Path(__file__).resolve().parent.parent
SENDER = "5511988887777"
TEXT = "hello tracing, my secret is 42"
WEBHOOK = "/api/v1/webhooks/whatsapp"
OFF = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ZAPA_TRACING")


def event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"sessionId": "s1", "origin": "1234567890", "eventType": event_type,
            "timestamp": 1795599600000, "data": data}


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch, redis_db: object,
             zapw: ZapwStub) -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, to memory; the core objects rebuilt to reach the stub
    (and rebuilt again afterwards for the tests that follow)."""
    for name in OFF:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZAPW_URL", zapw.url)
    get_settings.cache_clear()
    services.cache_clear()
    spans = InMemorySpanExporter()
    tracing.configure_tracing("zapa-bridge-test", celery=True, exporter=spans)
    yield spans
    tracing.shutdown_tracing()
    get_settings.cache_clear()
    services.cache_clear()


def post(client: Any, body: dict[str, Any]) -> str:
    token = os.environ["ZAPA_WEBHOOK_TOKEN"]
    # RAW_URI as gunicorn sets it: the instrumentation copies it into `http.target`.
    answer = client.post(WEBHOOK, json=body, query_string={"token": token},
                         headers={"X-Webhook-Event": body["eventType"]},
                         environ_overrides={"RAW_URI": f"{WEBHOOK}?token={token}"})
    assert answer.status_code == 200, answer.json
    return str(answer.json["status"])


def one(spans: list[ReadableSpan], name: str, **where: Any) -> ReadableSpan:
    found = [span for span in spans if span.name == name
             and all((span.attributes or {}).get(key) == value for key, value in where.items())]
    assert len(found) == 1, (name, where, [span.name for span in spans])
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_one_conversation_turn_is_one_trace_from_webhook_to_receipt(exporter, zapw):
    """message.received, taken in at the intake -> the inbound task (zapa.echo, which
    replies with send_message.delay) -> send_message -> the bridge call -> a receipt that
    the intake applies to the record: every span in one trace, each the child of the step
    that caused it."""
    from zapa_bridge.web import create_app

    zapw.add_session("s1")
    client = create_app({"TESTING": True}).test_client()
    with start_worker(celery_app, pool="solo", perform_ping_check=False,
                      shutdown_timeout=10, loglevel="WARNING"):
        assert post(client, event("message.received", {
            "messageId": "in-1", "type": "text", "text": TEXT, "isGroup": False,
            "from": f"{SENDER}@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
            "timestamp": 1700000000000})) == "accepted"
        sent = wait_until(lambda: zapw.sent_to("s1"), timeout=10, what="the reply at zapw")
        bridge_id = sent[0].message_id
        message_id = wait_until(
            lambda: services().store.find_by_bridge_id("s1", bridge_id), timeout=10,
            what="the reply recorded as sent")
        # zapw posts every receipt as message.sent; ack level 3 is delivered.
        assert post(client, event("message.sent", {"messageId": bridge_id,
                                                   "status": 3})) == "accepted"
        wait_until(lambda: services().store.get(message_id).status is MessageStatus.DELIVERED,
                   timeout=10, what="the record moved by the receipt")
        wait_until(lambda: any(s.name == "zapa.receipt" for s in exporter.get_finished_spans()),
                   timeout=10, what="the receipt's span")

    spans = list(exporter.get_finished_spans())
    webhook_posts = [s for s in spans if s.name == f"POST {WEBHOOK}"]
    assert [s.kind for s in webhook_posts] == [SpanKind.SERVER, SpanKind.SERVER]
    first_post = min(webhook_posts, key=lambda s: s.start_time or 0)
    turn = first_post.context.trace_id
    intake = one(spans, "zapa.intake", **{"zapa.event_type": "message.received"})
    receipt_intake = one(spans, "zapa.intake", **{"zapa.event_type": "message.sent"})
    assert [s for s in spans if s.name == "run/zapa.handle_event"] == []
    received = one(spans, "zapa.inbound.received")
    hand_on = one(spans, "zapa.hand_on")
    echo = one(spans, "run/zapa.echo")
    enqueue = one(spans, "zapa.enqueue")
    send_task = one(spans, "run/zapa.send_message")
    deliver = one(spans, "zapa.deliver")
    bridge = one(spans, "zapa.bridge.send")
    bridge_post = [s for s in spans if s.kind is SpanKind.CLIENT and s.name == "POST"
                   and parent_of(s) == bridge.context.span_id]
    receipt = one(spans, "zapa.receipt")
    chain = [first_post, intake, received, hand_on, echo, enqueue, send_task, deliver, bridge,
             *bridge_post]
    assert len(bridge_post) == 1
    assert {s.context.trace_id for s in [*chain, receipt]} == {turn}
    assert first_post.parent is None
    assert [parent_of(s) for s in chain[1:]] == [s.context.span_id for s in chain[:-1]]
    # The receipt joins the send's trace (the enqueue span its record keeps) and links
    # back to the trace its own webhook came in by.
    assert parent_of(receipt) == enqueue.context.span_id
    assert receipt_intake.context.trace_id != turn
    assert [link.context.span_id for link in receipt.links] == [receipt_intake.context.span_id]
    assert receipt.attributes["zapa.status"] == "delivered"
    # redis-py's spans are children inside the trace, never roots of their own.
    redis_spans = [s for s in spans if (s.attributes or {}).get("db.system") == "redis"]
    assert any(parent_of(s) == received.context.span_id for s in redis_spans)
    assert all(s.parent is not None for s in redis_spans)

    shown = json.dumps([{"name": s.name, "attributes": dict(s.attributes or {}),
                         "events": [dict(e.attributes or {}) for e in s.events],
                         "links": [dict(link.attributes or {}) for link in s.links]}
                        for s in spans], default=str)
    for secret in (os.environ["ZAPA_WEBHOOK_TOKEN"], "token=", TEXT, "secret is", SENDER):
        assert secret not in shown
    assert first_post.attributes["http.target"] == WEBHOOK
    assert "?" not in first_post.attributes.get("http.url", "")
    assert enqueue.attributes["zapa.to"] == "551********77"


def test_a_send_published_by_another_hand_is_delivered_in_its_own_turns_trace(exporter,
                                                                              zapw):
    """The second reply to one person waits for the first; the first's worker publishes
    it, inside the first turn's trace. Its delivery is put back in its own turn's trace,
    under the span that queued it, with a link to the run it came by."""
    from workers.tasks import send_message

    zapw.add_session("s1")
    with tracing.span("turn 1") as turn_1:
        first = send_message.delay(to=SENDER, text="one", session="s1").id
    with tracing.span("turn 2") as turn_2:
        second = send_message.delay(to=SENDER, text="two", session="s1").id
    with start_worker(celery_app, pool="solo", perform_ping_check=False,
                      shutdown_timeout=10, loglevel="WARNING"):
        wait_until(lambda: len([s for s in exporter.get_finished_spans()
                                if s.name == "zapa.deliver"]) == 2,
                   timeout=10, what="both deliveries")

    spans = list(exporter.get_finished_spans())
    deliveries = {s.attributes["zapa.message_id"]: s for s in spans if s.name == "zapa.deliver"}
    enqueued = {s.attributes["zapa.message_id"]: s for s in spans if s.name == "zapa.enqueue"}
    runs = {s.context.span_id: s for s in spans if s.name == "run/zapa.send_message"}
    assert services().store.get(second).status is MessageStatus.SENT
    assert parent_of(deliveries[first]) in runs
    assert deliveries[first].context.trace_id == turn_1.get_span_context().trace_id
    assert deliveries[second].context.trace_id == turn_2.get_span_context().trace_id
    assert parent_of(deliveries[second]) == enqueued[second].context.span_id
    came_by = [link.context.span_id for link in deliveries[second].links]
    assert len(came_by) == 1 and came_by[0] in runs
    assert runs[came_by[0]].context.trace_id == turn_1.get_span_context().trace_id


def test_url_attributes_lose_their_query_strings():
    scrubbed = tracing._scrub({"http.url": "https://h/p?token=x", "url.full": "https://h/p?a=b",
                               "http.target": "/p?token=x", "url.query": "token=x",
                               "url.path": "/p"})
    assert scrubbed == {"http.url": "https://h/p", "url.full": "https://h/p",
                        "http.target": "/p", "url.path": "/p"}
    assert tracing._scrub({"http.target": "/p"}) is None


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key not in OFF}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60, check=True)


def test_with_tracing_off_nothing_is_configured_nor_carried(redis_db):
    """No tracing SDK loaded, nothing instrumented, no traceparent in the messages we
    build. (redis-py imports the metrics SDK by itself when it is installed.)"""
    done = _python(
        "import json, sys\n"
        "from zapa_bridge import tracing\n"
        "from zapa_bridge.web import create_app\n"
        "import workers.signals\n"
        "app = create_app({'TESTING': True})\n"
        "workers.signals.start_tracing()\n"
        "from workers.runtime import services\n"
        "message = services().publisher.prepare('t', 'q', {})\n"
        "with tracing.span('zapa.intake') as span:\n"
        "    recording = span.is_recording()\n"
        "print(json.dumps({'configured': tracing._configured is not None,\n"
        "    'sdk': sorted(m for m in sys.modules if m.startswith((\n"
        "        'opentelemetry.sdk.trace', 'opentelemetry.instrumentation',\n"
        "        'opentelemetry.exporter'))),\n"
        "    'headers': sorted(json.loads(message.payload)['headers']),\n"
        "    'recording': recording, 'carried': tracing.current_traceparent()}))\n")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["configured"] is False
    assert found["sdk"] == []
    assert found["recording"] is False
    assert found["carried"] == {}
    assert "traceparent" not in found["headers"]


def test_console_tracing_exports_from_a_gevent_patched_process():
    """ZAPA_TRACING=console under gevent's patching, as in gunicorn's worker: the batch
    processor's thread (a greenlet there) exports the span."""
    done = _python(
        "from gevent import monkey\n"
        "monkey.patch_all()\n"
        "from zapa_bridge import tracing\n"
        "provider = tracing.configure_tracing('zapa-bridge-web')\n"
        "with tracing.span('zapa.intake', attributes={'zapa.event_type': 'x'}):\n"
        "    carried = tracing.current_traceparent()\n"
        "assert carried['traceparent'].startswith('00-'), carried\n"
        "assert provider.force_flush(5000)\n",
        ZAPA_TRACING="console", OTEL_SERVICE_NAME="zapa-bridge-web")
    assert '"name": "zapa.intake"' in done.stdout
    assert '"service.name": "zapa-bridge-web"' in done.stdout


def console_spans(log: str) -> list[dict[str, Any]]:
    """The spans ConsoleSpanExporter printed among a process's log lines (each one JSON
    object whose braces open and close a line of their own)."""
    spans, block = [], None
    for text in log.splitlines():
        if text == "{":
            block = [text]
        elif block is not None:
            block.append(text)
            if text == "}":
                spans.append(json.loads("\n".join(block)))
                block = None
    return spans


@pytest.mark.slow
def test_gunicorn_and_a_worker_process_carry_one_trace(start_web, start_worker, zapw):
    """The processes as they run in production, tracing to their stdout: the webhook span
    of gunicorn's gevent worker leads, through the intake's hand-on, to the Celery worker's
    run of the inbound task, and the reply's send is in that same trace."""
    zapw.add_session("s1")
    tracing_env = {"ZAPA_TRACING": "console", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    worker = start_worker(**tracing_env)
    web = start_web(**tracing_env)
    token = os.environ["ZAPA_WEBHOOK_TOKEN"]
    body = event("message.received", {
        "messageId": "in-2", "type": "text", "text": TEXT, "isGroup": False,
        "from": f"{SENDER}@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
        "timestamp": 1700000000000})
    answer = requests.post(f"{web.url}{WEBHOOK}?token={token}", json=body, timeout=5)
    assert answer.json() == {"status": "accepted"}
    wait_until(lambda: zapw.sent_to("s1"), timeout=10, what="the reply at zapw")

    def found() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        web_spans, worker_spans = console_spans(web.log()), console_spans(worker.log())
        names = {span["name"] for span in worker_spans}
        if f"POST {WEBHOOK}" in {span["name"] for span in web_spans} \
                and {"run/zapa.echo", "zapa.bridge.send"} <= names:
            return web_spans, worker_spans
        return None

    web_spans, worker_spans = wait_until(found, timeout=10, what="the spans exported")
    webhook = next(span for span in web_spans if span["name"] == f"POST {WEBHOOK}")
    intake = next(span for span in web_spans if span["name"] == "zapa.intake")
    received = next(span for span in web_spans if span["name"] == "zapa.inbound.received")
    hand_on = next(span for span in web_spans if span["name"] == "zapa.hand_on")
    echo = next(span for span in worker_spans if span["name"] == "run/zapa.echo")
    turn = webhook["context"]["trace_id"]
    assert webhook["resource"]["attributes"]["service.name"] == "zapa-bridge-web"
    assert echo["resource"]["attributes"]["service.name"] == "zapa-bridge-worker"
    assert intake["parent_id"] == webhook["context"]["span_id"]
    assert received["parent_id"] == intake["context"]["span_id"]
    assert hand_on["parent_id"] == received["context"]["span_id"]
    assert echo["parent_id"] == hand_on["context"]["span_id"]
    assert {span["context"]["trace_id"] for span in worker_spans
            if span["name"] in ("run/zapa.echo", "zapa.enqueue", "run/zapa.send_message",
                                "zapa.deliver", "zapa.bridge.send")} == {turn}
    assert webhook["attributes"]["http.target"] == WEBHOOK
    for span in [*web_spans, *worker_spans]:
        shown = json.dumps(span["attributes"])
        assert token not in shown and TEXT not in shown and SENDER not in shown
