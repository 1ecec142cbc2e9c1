"""Slow clients against the web process as the Procfile runs it (gunicorn, gevent workers):
they must not delay a legitimate webhook, and they are cut off by the header and body
timeouts. Also what gunicorn itself answers and logs for bad or oversized requests."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator

import requests

from tests.helpers import wait_until

PATH = "/api/v1/webhooks/whatsapp"
TOKEN = os.environ["ZAPA_WEBHOOK_TOKEN"]
# More than gthread's 2 processes x 4 threads could ever serve at once.
SLOW_CLIENTS = 20
DRIBBLE_EVERY = 0.5


def event(n: int, text: str = "hi") -> bytes:
    return json.dumps({
        "sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
        "timestamp": 1795599514484,
        "data": {"from": "5511988887777@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
                 "messageId": f"3EB0SLOW{n:06d}", "timestamp": 1700000000000,
                 "isGroup": False, "type": "text", "text": text},
    }).encode()


def head(port: int, *, token: str | None, length: int | None = None,
         chunked: bool = False) -> bytes:
    query = f"?token={token}" if token else ""
    lines = [f"POST {PATH}{query} HTTP/1.1", f"Host: 127.0.0.1:{port}",
             "Content-Type: application/json", "X-Webhook-Event: message.received"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


@contextlib.contextmanager
def dribbling(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that never finish a request, each sending one more byte every
    DRIBBLE_EVERY s: half stop inside their headers (no token needed), half inside their
    body (with the token, or the webhook would refuse them unread; and on loopback their
    failed checks would block the address the legitimate webhooks come from too)."""
    sockets = []
    for n in range(count):
        sock = connect(port)
        if n % 2:
            sock.sendall(head(port, token=TOKEN, length=100_000) + b"{")
        else:
            sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        sockets.append(sock)
    stop = threading.Event()

    def dribble() -> None:
        while not stop.wait(DRIBBLE_EVERY):
            for sock in sockets:
                with contextlib.suppress(OSError):  # the server closed it: allowed
                    sock.send(b" ")

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in sockets:
            sock.close()


def post_webhook(url: str, n: int) -> tuple[int, float]:
    started = time.monotonic()
    answer = requests.post(f"{url}{PATH}", params={"token": TOKEN}, data=event(n),
                           headers={"Content-Type": "application/json",
                                    "X-Webhook-Event": "message.received"}, timeout=5)
    return answer.status_code, time.monotonic() - started


def read_answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One answer (its head and Content-Length bytes), or what came until the server
    closed the connection; b"" if it closed it without answering."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
        head_end = received.find(b"\r\n\r\n")
        if head_end >= 0:
            length = next((int(line.split(b":")[1]) for line in received[:head_end].split(
                b"\r\n") if line.lower().startswith(b"content-length:")), 0)
            if len(received) >= head_end + 4 + length:
                break
    return received


def test_webhooks_are_answered_at_once_while_twenty_clients_dribble(start_web, redis_db):
    web = start_web()
    with dribbling(web.port, SLOW_CLIENTS):
        time.sleep(DRIBBLE_EVERY * 2)  # every slow client has been accepted and is waiting
        answers = [post_webhook(web.url, n) for n in range(10)]
    assert [status for status, _ in answers] == [200] * 10
    assert max(seconds for _, seconds in answers) < 2.0


def test_a_connection_that_never_finishes_its_headers_is_closed(start_web, redis_db):
    web = start_web(ZAPA_WEB_HEADER_TIMEOUT="3")
    with connect(web.port) as sock:
        sock.sendall(f"POST {PATH}?token={TOKEN} HTTP/1.1\r\nHost: x\r\n".encode())
        started = time.monotonic()
        assert read_answer(sock, timeout=6) == b""
    # Its own timeout, not gunicorn's keepalive (2 s), which is for later requests.
    assert 2.5 < time.monotonic() - started < 4.5


def test_an_idle_keep_alive_connection_gets_keepalive_not_the_header_timeout(start_web,
                                                                            redis_db):
    web = start_web(ZAPA_WEB_HEADER_TIMEOUT="6")
    with connect(web.port) as sock:
        body = event(7)
        sock.sendall(head(web.port, token=TOKEN, length=len(body)) + body)
        assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
        answered = time.monotonic()
        assert read_answer(sock, timeout=6) == b""
    assert time.monotonic() - answered < 4.0  # gunicorn's keepalive: 2 s


def test_a_body_that_does_not_arrive_in_time_is_answered_408(start_web, redis_db):
    web = start_web(ZAPA_WEB_BODY_TIMEOUT="1")
    with connect(web.port) as sock:
        sock.sendall(head(web.port, token=TOKEN, length=1000) + b"{")
        started = time.monotonic()
        answer = read_answer(sock)
    assert time.monotonic() - started < 3.0
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"code":"request_timeout"' in answer.replace(b" ", b"")


def test_a_chunked_body_over_the_limit_is_413(start_web, redis_db):
    web = start_web(ZAPA_WEBHOOK_MAX_BYTES="2048")
    body = event(1, text="x" * 3000)
    with connect(web.port) as sock:
        sock.sendall(head(web.port, token=TOKEN, chunked=True)
                     + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"request_entity_too_large" in answer


def test_a_bad_request_line_is_logged_without_its_query_string(start_web, redis_db):
    web = start_web()
    with connect(web.port) as sock:
        # A control character in the target makes gunicorn quote the whole line in its log.
        sock.sendall(f"POST {PATH}?token=leaked-secret-0042\x01 HTTP/1.1\r\nHost: x\r\n\r\n"
                     .encode())
        assert read_answer(sock).startswith(b"HTTP/1.1 400 ")
    wait_until(lambda: "Invalid HTTP request line" in web.log(), timeout=5,
               what="gunicorn's line about the bad request")
    assert "leaked-secret-0042" not in web.log()
    assert f"{PATH}?[query removed]" in web.log()
