"""Task messages of our Publisher (its format built from Celery's own at start): the same as
Celery's, and run by a real worker."""

from __future__ import annotations

import base64
import json

from tests.helpers import wait_until
from workers.celery_app import app
from workers.tasks import services
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.queues import Queue
from zapa_bridge.store.publisher import ENQUEUED_AT_HEADER

TO = "5511988887777"


def _decoded(payload: str) -> tuple[dict, dict, list]:
    message = json.loads(payload)
    properties = message["properties"]
    body = message["body"]
    if properties.get("body_encoding") == "base64":  # as kombu writes it
        body = base64.b64decode(body)
    return message["headers"], properties, json.loads(body)


def test_a_prepared_message_has_celerys_layout_and_body():
    kwargs = {"to": TO, "text": "hi", "session": "s1"}
    redis = services().redis
    redis.delete(Queue.SEND_LOW)
    app.send_task("zapa.send_message", kwargs=kwargs, task_id="celerys", queue=Queue.SEND_LOW,
                  argsrepr="()", kwargsrepr="x", ignore_result=True)
    celerys = redis.rpop(Queue.SEND_LOW)
    ours = services().publisher.prepare("zapa.send_message", Queue.SEND_LOW, kwargs,
                                        task_id="ours", kwargsrepr="x").payload

    c_headers, c_props, c_body = _decoded(celerys)
    o_headers, o_props, o_body = _decoded(ours)
    assert set(o_headers) == set(c_headers)
    assert ENQUEUED_AT_HEADER in o_headers
    for same in ("lang", "task", "retries", "timelimit", "argsrepr", "kwargsrepr", "eta",
                 "expires", "ignore_result", "origin", "shadow", "group", "parent_id"):
        assert o_headers[same] == c_headers[same], same
    assert (o_headers["id"], o_headers["root_id"]) == ("ours", "ours")
    assert o_body == c_body
    # Celery repeats argsrepr and kwargsrepr in the properties; nothing reads them there.
    # Our body is plain JSON: no body_encoding.
    assert set(o_props) == set(c_props) - {"argsrepr", "kwargsrepr", "body_encoding"}
    assert o_props["delivery_info"] == c_props["delivery_info"]
    assert o_props["correlation_id"] == "ours"
    assert o_props["delivery_tag"] != c_props["delivery_tag"]
    # reply_to is the sending process's own id (Celery's `app.thread_oid`); a task without
    # results is never answered there.
    for same in ("delivery_mode", "priority"):
        assert o_props[same] == c_props[same], same
    assert {key: message for key, message in json.loads(ours).items()
            if key not in ("body", "headers", "properties")} == \
        {key: message for key, message in json.loads(celerys).items()
         if key not in ("body", "headers", "properties")}


def test_a_real_worker_runs_a_prepared_message(start_worker, zapw):
    zapw.add_session("s1")
    start_worker()
    prepared = services().publisher.prepare(
        "zapa.send_message", Queue.SEND_DEFAULT, {"to": TO, "text": "by wire", "session": "s1"},
        task_id="wired-1")
    services().redis.lpush(prepared.queue, prepared.payload)

    record = wait_until(lambda: (r := services().store.get("wired-1")) is not None
                        and r.status is MessageStatus.SENT and r, what="wired-1 sent")
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["by wire"]
    assert record.history[0]["note"] == "queued by name"
