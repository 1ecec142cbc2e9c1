"""`python -m bench.loadgen`: posts zapw-shaped `message.received` events, each with a unique
message id, to a webhook URL for a fixed time, and writes what it measured as JSON. Like
zapw's webhook sender, it opens a new connection for every post unless told to keep them.

A process of its own, so that the load it makes never shares an interpreter with the
processes it measures. Closed loop (no `--rate`): each of `--connections` clients posts
again as soon as it has its answer, which finds the server's capacity. Open loop
(`--rate`): posts start on a fixed schedule whatever the answers, as zapw's would; a post
waits for a free client when all are busy, and its latency counts from its scheduled time,
so a slow server cannot hide its slowness by slowing the load down.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zapa_bridge.simulator.inbound import Inbound, received_data

DRAIN_SECONDS = 10.0  # answers still awaited after the run ends, at most


@dataclass(frozen=True, slots=True)
class Options:
    url: str
    seconds: float
    warmup: float
    connections: int
    rate: float | None
    senders: int
    session: str
    phone: str
    record_posts: bool
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class Job:
    index: int
    marker: str
    body: bytes
    at_wall: float  # when it was due (epoch s)
    at: float  # the same on the monotonic clock
    measured: bool  # due after the warm-up


@dataclass
class Recorder:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    posted: dict[str, float] = field(default_factory=dict)
    max_lag_ms: float = 0.0

    def record(self, job: Job, status: int, done: float) -> None:
        if job.measured:
            self.latencies_ms.append((done - job.at) * 1000)
            self.statuses[status] += 1


class EventFactory:
    """zapw's `message.received` envelope, shaped by the simulator's own code."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.run_id = uuid.uuid4().hex[:8]

    def job(self, index: int, at_wall: float, at: float, measured: bool) -> Job:
        marker = f"{self.run_id}-{index}"
        opts = self.options
        inbound = Inbound(text=f"bench {marker}", sender=f"5521{index % opts.senders:09d}",
                          message_id=f"3EB0{self.run_id.upper()}{index:08d}")
        envelope = {"sessionId": opts.session, "origin": opts.phone,
                    "eventType": "message.received", "timestamp": int(at_wall * 1000),
                    "data": received_data(inbound, opts.phone, 1)}
        body = json.dumps(envelope, separators=(",", ":")).encode()
        return Job(index, marker, body, at_wall, at, measured)


class Connection:
    """An HTTP/1.1 client connection: kept alive (reopened when the server closes it), or
    a new one for every request, as zapw's webhook sender opens one per event."""

    def __init__(self, url: str, *, keep_alive: bool) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.head = (f"POST {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     "Content-Type: application/json\r\n"
                     "X-Webhook-Event: message.received\r\n"
                     + ("" if keep_alive else "Connection: close\r\n")).encode()
        self.keep_alive = keep_alive
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        """The answer's status; retried once on a fresh connection if a kept-alive one had
        been closed by the server meanwhile."""
        reused = self.writer is not None
        try:
            return await self._post(body)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
            if not reused:
                raise
            return await self._post(body)

    async def _post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status, keep_alive = await read_response(self.reader)
        if not (keep_alive and self.keep_alive):
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one whole answer; its status and whether the connection stays open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    headers = {}
    for header in header_lines:
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip() or b"0", 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers.get("connection") != "close"


async def run(options: Options) -> dict[str, Any]:
    factory, recorder = EventFactory(options), Recorder()
    start_wall, start = time.time(), time.monotonic()
    end, measure_from = start + options.seconds, start + options.warmup
    counter = itertools.count()

    def due_job(index: int, at: float) -> Job:
        return factory.job(index, start_wall + (at - start), at, at >= measure_from)

    if options.rate is None:
        async def next_job() -> Job | None:
            now = time.monotonic()
            return due_job(next(counter), now) if now < end else None
        source: Callable[[], Awaitable[Job | None]] = next_job
    else:
        source = scheduled(options.rate, start, end, options.connections, due_job)
    workers = [asyncio.create_task(post_jobs(options.url, options.keep_alive, source, recorder))
               for _ in range(options.connections)]
    await asyncio.wait(workers, timeout=options.seconds + DRAIN_SECONDS)
    for worker in workers:
        worker.cancel()
    return summary(options, recorder)


def scheduled(rate: float, start: float, end: float, consumers: int,
              due_job: Callable[[int, float], Job]) -> Callable[[], Awaitable[Job | None]]:
    """Jobs due every 1/rate seconds from `start` to `end`, from a queue the connections
    share; then one None per consumer."""
    queue: asyncio.Queue[Job | None] = asyncio.Queue()

    async def produce() -> None:
        for index in itertools.count():
            at = start + index / rate
            if at >= end:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            queue.put_nowait(due_job(index, at))
        for _ in range(consumers):
            queue.put_nowait(None)

    producer = asyncio.ensure_future(produce())

    async def next_job() -> Job | None:
        _ = producer  # kept alive while jobs are taken
        return await queue.get()

    return next_job


async def post_jobs(url: str, keep_alive: bool,
                    next_job: Callable[[], Awaitable[Job | None]], recorder: Recorder) -> None:
    connection = Connection(url, keep_alive=keep_alive)
    try:
        while (job := await next_job()) is not None:
            lag = time.monotonic() - job.at
            recorder.max_lag_ms = max(recorder.max_lag_ms, lag * 1000)
            recorder.posted[job.marker] = time.time()
            try:
                status = await connection.post(job.body)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                recorder.errors[type(exc).__name__] += 1
                connection.close()
                continue
            recorder.record(job, status, time.monotonic())
    finally:
        connection.close()


def summary(options: Options, recorder: Recorder) -> dict[str, Any]:
    return {
        "measured_seconds": options.seconds - options.warmup,
        "answered": sum(recorder.statuses.values()),
        "statuses": {str(code): count for code, count in recorder.statuses.items()},
        "errors": dict(recorder.errors),
        "latencies_ms": recorder.latencies_ms,
        "max_lag_ms": recorder.max_lag_ms,
        "posted": recorder.posted if options.record_posts else {},
    }


def parse_args(argv: Sequence[str] | None) -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--url", required=True, help="the webhook URL, token included")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    parser.add_argument("--connections", type=int, default=8,
                        help="requests in flight at most")
    parser.add_argument("--keep-alive", action="store_true",
                        help="reuse connections (default: a new one per request, as zapw)")
    parser.add_argument("--rate", type=float, help="posts per second (open loop)")
    parser.add_argument("--senders", type=int, default=1000, help="distinct sender numbers")
    parser.add_argument("--session", required=True)
    parser.add_argument("--phone", required=True, help="the session's own number")
    parser.add_argument("--record-posts", action="store_true",
                        help="keep when each event was posted, by its text's marker")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    options = Options(args.url, args.seconds, args.warmup, args.connections, args.rate,
                      args.senders, args.session, args.phone, args.record_posts,
                      args.keep_alive)
    return options, args.out


def main(argv: Sequence[str] | None = None) -> None:
    options, out = parse_args(argv)
    out.write_text(json.dumps(asyncio.run(run(options))))


if __name__ == "__main__":
    main()
