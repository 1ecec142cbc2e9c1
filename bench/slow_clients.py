"""Slow clients: legitimate webhooks posted at a steady rate while many connections hold
requests open by sending a byte every few seconds (issue 14: eight such connections took
the gthread workers down). The baseline is the same webhooks with no slow connection,
against the same server, in the same run; the two alternate, in pairs (bench.pairs)."""

from __future__ import annotations

import contextlib
import json
import secrets
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from bench.bridge import SESSION, SESSION_PHONE
from bench.environment import OURS_WSGI, BenchEnv
from bench.pairs import alternate
from bench.processes import run_module
from bench.results import Section, ceiling_row, info_row, pairs_note, percentile
from bench.sizes import Sizes
from zapa_bridge.web.webhooks import WEBHOOK_PATH

TITLE = "Slow clients"
TARGET_P99_MS = 100.0
SETTLE_SECONDS = 1.0  # both gunicorn workers loaded, every slow connection accepted
DRIBBLE_EVERY = 5.0  # seconds between two bytes of one slow connection, as in the issue


@dataclass(frozen=True, slots=True)
class Size:
    slow_connections: int
    # They open one after another over this long, as independent clients would, so their
    # timeouts come spread out too (all cut at one instant is a worst case; see details).
    ramp_seconds: float
    seconds: float
    rate: float  # legitimate webhooks per second
    in_flight: int  # of them at most at once


SIZES = {"full": Size(200, 10.0, 20.0, 50.0, 8), "smoke": Size(200, 1.0, 3.0, 20.0, 4)}


@dataclass
class Load:
    slow_connections: int
    p50_ms: float | None
    p99_ms: float | None
    answered: int
    statuses: dict[str, int]
    errors: dict[str, int]
    slow: SlowStats | None = None


@dataclass
class SlowStats:
    """What became of the slow connections: each one the server ends is opened again, so
    that as many stay open throughout."""

    opened: int = 0
    closed_unanswered: int = 0  # cut off in their headers (ZAPA_WEB_HEADER_TIMEOUT)
    answered: dict[str, int] = field(default_factory=dict)  # status line -> how many


def run(env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    size = SIZES.get(sizes.name, SIZES["full"])
    loads = alternate(
        sizes.pairs,
        lambda pair: load(env, sizes, size, slow_connections=0, tag=f"no-slow{pair}"),
        lambda pair: load(env, sizes, size, slow_connections=size.slow_connections,
                          tag=f"slow{pair}"))
    p50 = loads.figure(lambda run: run.p50_ms)
    p99 = loads.figure(lambda run: run.p99_ms)
    section = Section(TITLE, method=method(sizes, size), rows=[
        info_row(TITLE, f"webhook p50, {size.slow_connections} slow connections open",
                 p50.ours, p50.baseline, "ms", ratios=p50.ratios),
        ceiling_row(TITLE, f"webhook p99, {size.slow_connections} slow connections open",
                    p99.ours, p99.baseline, "ms", TARGET_P99_MS, ratios=p99.ratios),
    ])
    section.details += [pairs_note("p99", p99, "ms"), ""]
    for index, (ours, baseline) in enumerate(zip(loads.ours, loads.baseline, strict=True), 1):
        section.details += [f"Pair {index}:", "", *details(ours, baseline), ""]
    return section


def load(env: BenchEnv, sizes: Sizes, size: Size, *, slow_connections: int,
         tag: str) -> Load:
    env.flush()
    # The settings now want an admin token of 32 characters in production; BenchEnv's is
    # shorter (until bench/environment.py follows), and this benchmark needs none of its own.
    web, port = env.start_web(OURS_WSGI, tag, ZAPA_ADMIN_TOKEN=secrets.token_urlsafe(32))
    out = env.log_dir / f"{tag}-slow-clients.json"
    slow = SlowClients(port, env.webhook_token, slow_connections, size.ramp_seconds)
    try:
        slow.start()
        time.sleep(size.ramp_seconds + SETTLE_SECONDS)
        run_module("bench.loadgen", [
            "--url", env.webhook_url(port), "--seconds", str(size.seconds),
            "--warmup", str(sizes.warmup_seconds), "--rate", str(size.rate),
            "--connections", str(size.in_flight),
            "--session", SESSION, "--phone", SESSION_PHONE, "--out", str(out),
        ], env.child_env(), timeout=size.seconds + 60)
    finally:
        stats = slow.stop()
        env.children.stop(web)
    result = json.loads(out.read_text())
    latencies = result["latencies_ms"]
    return Load(slow_connections, percentile(latencies, 50), percentile(latencies, 99),
                result["answered"], result["statuses"], result["errors"],
                stats if slow_connections else None)


class SlowClients:
    """`count` connections, kept open from a thread of this process: half send their
    headers a byte at a time (no token needed for that), half send whole headers with the
    token and then their body a byte at a time (a body without a token is refused unread,
    and on loopback the refusals would block the address the webhooks come from too)."""

    def __init__(self, port: int, token: str, count: int, ramp_seconds: float) -> None:
        self.port, self.token, self.count, self.ramp = port, token, count, ramp_seconds
        self.stats = SlowStats()
        self._selector = selectors.DefaultSelector()
        self._due: dict[socket.socket, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> SlowStats:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for sock in list(self._due):
            self._close(sock)
        self._selector.close()
        return self.stats

    def _open(self, n: int) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if n % 2:
            sock.sendall(f"POST {WEBHOOK_PATH}?token={self.token} HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
                         "X-Webhook-Event: message.received\r\n"
                         "Content-Length: 100000\r\n\r\n{".encode())
        else:
            sock.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, n)
        self._due[sock] = time.monotonic() + DRIBBLE_EVERY
        self.stats.opened += 1

    def _close(self, sock: socket.socket) -> None:
        self._selector.unregister(sock)
        del self._due[sock]
        sock.close()

    def _run(self) -> None:
        started, opened = time.monotonic(), 0
        while not self._stop.is_set():
            due = self.count if not self.ramp else int(
                self.count * (time.monotonic() - started) / self.ramp)
            while opened < min(due, self.count):
                self._open(opened)
                opened += 1
            for key, _ in self._selector.select(timeout=0.02):
                sock, n = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                self._ended(sock)
                self._close(sock)
                self._open(n)
            now = time.monotonic()
            for sock, due in list(self._due.items()):
                if due <= now:
                    self._due[sock] = now + DRIBBLE_EVERY
                    with contextlib.suppress(OSError):  # closed: the selector sees it next
                        sock.send(b" ")

    def _ended(self, sock: socket.socket) -> None:
        """The server answered or closed `sock`: count which."""
        try:
            data = sock.recv(4096)
        except OSError:
            data = b""
        if not data:
            self.stats.closed_unanswered += 1
            return
        status = data.split(b"\r\n", 1)[0].decode("latin-1")
        self.stats.answered[status] = self.stats.answered.get(status, 0) + 1


def method(sizes: Sizes, size: Size) -> list[str]:
    return [
        f"`bench.loadgen` posts zapw's `message.received` events at {size.rate:g}/s for "
        f"{size.seconds:g} s (open loop: latency counts from each post's scheduled time; at "
        f"most {size.in_flight} in flight; a new connection for each, as zapw; the first "
        f"{sizes.warmup_seconds:g} s are not measured), each with the token and a unique id.",
        f"Meanwhile {size.slow_connections} slow connections stay open, opened one after "
        f"another over the {size.ramp_seconds:g} s before, as independent clients come, "
        f"each sending one byte every {DRIBBLE_EVERY:g} s: half inside their headers (no "
        "token), half inside a body of 100,000 bytes (with the token: without one the "
        "webhook refuses the body unread, and on loopback the refusals would throttle the "
        "address the webhooks come from). One the server ends (header or body timeout, "
        "10 s each by default) is opened again at once.",
        "Server: `gunicorn -c gunicorn.conf.py 'zapa_bridge.web:create_app()'` as the "
        "Procfile runs it (gevent workers, `WEB_CONCURRENCY` 2), `ZAPA_ENV=production`; no "
        "Celery worker runs. Baseline, in the same run: the same server and webhooks with no "
        "slow connection. The target is the issue's (#14): p99 under 100 ms.",
        f"In pairs, A B A B: the server without slow connections, then with them, "
        f"{sizes.pairs} times, each a fresh server from an empty Redis; a ratio is the "
        "median of the pairs' ratios, the range their lowest and highest, and ours and the "
        "baseline each side's median (the target is judged on ours' median).",
    ]


def details(ours: Load, baseline: Load) -> list[str]:
    lines = []
    for name, served in (("with slow connections", ours), ("baseline", baseline)):
        other = {code: n for code, n in served.statuses.items() if code != "200"}
        lines.append(f"- {name}: {served.answered:,} webhooks answered in the measured time; "
                     f"answers other than 200: {other or 'none'}; connection errors: "
                     f"{served.errors or 'none'}.")
    if ours.slow is not None:
        answered = ", ".join(f"{n} `{status}`" for status, n in
                             sorted(ours.slow.answered.items())) or "none"
        lines.append(f"- Slow connections opened: {ours.slow.opened:,}; closed by the server "
                     f"without an answer (header timeout): {ours.slow.closed_unanswered:,}; "
                     f"answered: {answered}.")
    return lines
