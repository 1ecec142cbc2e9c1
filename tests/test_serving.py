"""zapa_bridge.web.serving: the chunked-body limit, the body deadline and the error log's
query-string filter, each on its own (the gunicorn side is in test_slow_clients.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import time

import gevent.socket
import pytest
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from zapa_bridge.config import load_settings
from zapa_bridge.errors import ConfigError
from zapa_bridge.web import create_app
from zapa_bridge.web.serving import (
    ChunkedLimit,
    DeadlineInput,
    QueryStringFilter,
    body_timeout,
    hide_query_strings,
    strip_query_strings,
)

PATH = "/api/v1/webhooks/whatsapp"
TOKEN = os.environ["ZAPA_WEBHOOK_TOKEN"]
EVENT = {
    "sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
    "timestamp": 1795599514484,
    "data": {"from": "5511988887777@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
             "messageId": "3EB0CCCC3333", "timestamp": 1700000000000, "isGroup": False,
             "type": "text", "text": ""},
}


def chunked_post(body: bytes, max_bytes: int = 2048):
    """Post `body` with no Content-Length, as a chunked request reaches the app."""
    client = create_app({"TESTING": True, "SETTINGS": load_settings(
        ZAPA_WEBHOOK_MAX_BYTES=max_bytes)}).test_client()
    return client.post(PATH, query_string={"token": TOKEN}, input_stream=io.BytesIO(body),
                       headers={"Content-Type": "application/json",
                                "Transfer-Encoding": "chunked",
                                "X-Webhook-Event": "message.received"},
                       environ_overrides={"wsgi.input_terminated": True})


def event_of_size(size: int) -> bytes:
    bare = json.dumps(EVENT).encode()
    return json.dumps({**EVENT, "data": {**EVENT["data"], "text": "x" * (size - len(bare))}}
                      ).encode()


def test_chunked_body_over_the_limit_is_413_not_a_cut_body(redis_db):
    answer = chunked_post(event_of_size(3000))
    assert (answer.status_code, answer.json["error"]["code"]) == (
        413, "request_entity_too_large")


def test_chunked_body_of_exactly_the_limit_is_accepted(redis_db):
    body = event_of_size(2048)
    assert len(body) == 2048
    answer = chunked_post(body)
    assert (answer.status_code, answer.json) == (200, {"status": "accepted"})


def test_chunked_limit_reads_one_byte_past_the_limit_at_most():
    source = io.BytesIO(b"a" * 10)
    with pytest.raises(RequestEntityTooLarge):
        ChunkedLimit(source, lambda: 4).read(4)
    assert source.tell() == 5


def test_chunked_body_with_no_limit_is_read_whole():
    assert ChunkedLimit(io.BytesIO(b"a" * 10), lambda: None).read() == b"a" * 10


def test_body_read_past_its_deadline_is_408():
    reader, writer = gevent.socket.socketpair()  # gevent's own sockets, no patching
    stream = DeadlineInput(reader.makefile("rb"), deadline=_now() + 0.2)
    writer.sendall(b"{")  # and then nothing more
    with pytest.raises(RequestTimeout):
        stream.read(10)
    reader.close()
    writer.close()


def test_body_read_in_time_is_returned_whole():
    stream = DeadlineInput(io.BytesIO(b"{}"), deadline=_now() + 5)
    assert stream.read() == b"{}"


def test_body_timeout_is_ten_seconds_unless_set():
    assert body_timeout({}) == 10.0
    assert body_timeout({"ZAPA_WEB_BODY_TIMEOUT": "2.5"}) == 2.5


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_body_timeout_that_is_no_positive_number_is_refused_naming_it(raw):
    with pytest.raises(ConfigError, match="ZAPA_WEB_BODY_TIMEOUT"):
        body_timeout({"ZAPA_WEB_BODY_TIMEOUT": raw})


def test_error_log_line_keeps_the_path_and_loses_the_query_string():
    record = logging.LogRecord(
        "gunicorn.error", logging.WARNING, __file__, 1,
        "Invalid request from ip=%s: %s", ("127.0.0.1", "Invalid HTTP request line: "
                                           "'POST /api/v1/webhooks/whatsapp?token=s3cret x'"),
        None)
    assert QueryStringFilter().filter(record)
    assert record.getMessage() == (
        "Invalid request from ip=127.0.0.1: Invalid HTTP request line: "
        "'POST /api/v1/webhooks/whatsapp?[query removed] x'")


def test_traceback_in_the_error_log_loses_the_query_string_too():
    logger, written = logging.getLogger("test.serving.traceback"), io.StringIO()
    logger.addHandler(logging.StreamHandler(written))
    hide_query_strings(logger)
    hide_query_strings(logger)  # gunicorn may set up its logs again: still one filter
    try:
        raise ValueError("bad /x?token=s3cret")
    except ValueError:
        logger.exception("Error handling request %s", "/x?token=s3cret")
    assert len(logger.filters) == 1
    assert "s3cret" not in written.getvalue()
    assert "ValueError: bad /x?[query removed]" in written.getvalue()


def test_text_without_a_query_string_is_unchanged():
    assert strip_query_strings("worker booted (pid: 7)") == "worker booted (pid: 7)"


def _now() -> float:
    return time.monotonic()
