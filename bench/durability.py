"""What `ZAPA_REDIS_WAIT_REPLICAS=1` costs: the two writes it waits on, a send accepted
(`Outbox.enqueue`: the record and the queue entry) and a webhook accepted (`Intake.accept`:
dedupe and queue), each called one after another by one caller on a replicated Redis of
its own (a master, a replica and three Sentinels on loopback, reached through Sentinel).
"Baseline" is the same call without the wait; the two alternate in pairs (bench.pairs).
Loopback replication is the best case: across machines each wait adds the round trip to
the replica."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.environment import BenchEnv
from bench.pairs import alternate
from bench.results import Section, info_row, pairs_note, percentile
from bench.sizes import Sizes
from workers.broker import KombuRedisLayout
from workers.celery_app import app
from zapa_bridge.config import load_settings
from zapa_bridge.devtools.replicated_redis import ReplicatedRedis
from zapa_bridge.inbound.events import parse_event
from zapa_bridge.outbound.messages import build_message
from zapa_bridge.services import Services

TITLE = "Durability (WAIT for one replica)"


@dataclass
class Calls:
    per_second: float
    p50_ms: float | None
    p99_ms: float | None


@dataclass
class Run:
    send: Calls
    webhook: Calls


def run(env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    with ReplicatedRedis(directory=str(env.log_dir / "replicated-redis")) as servers:
        runs = alternate(sizes.pairs, lambda pair: measure(servers, env.log_dir, sizes, 0),
                         lambda pair: measure(servers, env.log_dir, sizes, 1))
    rows, details = [], []
    for name, part in (("send accepted", lambda r: r.send),
                       ("webhook accepted", lambda r: r.webhook)):
        rate = runs.figure(lambda r, part=part: part(r).per_second)
        p50 = runs.figure(lambda r, part=part: part(r).p50_ms)
        p99 = runs.figure(lambda r, part=part: part(r).p99_ms)
        rows += [info_row(TITLE, f"{name}: calls/s (one caller)", rate.ours, rate.baseline,
                          "calls/s", ratios=rate.ratios),
                 info_row(TITLE, f"{name}: p50", p50.ours, p50.baseline, "ms",
                          ratios=p50.ratios),
                 info_row(TITLE, f"{name}: p99", p99.ours, p99.baseline, "ms",
                          ratios=p99.ratios)]
        details.append(pairs_note(f"{name}, calls/s", rate, "calls/s"))
    method = [f"{sizes.durability_calls} calls of each kind per run, {sizes.pairs} pairs; "
              "ours: ZAPA_REDIS_WAIT_REPLICAS=1, baseline: 0, both through Sentinel."]
    return Section(TITLE, rows=rows, method=method, details=details)


def measure(servers: ReplicatedRedis, log_dir: Path, sizes: Sizes, replicas: int) -> Run:
    settings = load_settings(REDIS_URL=servers.url, ZAPA_REDIS_WAIT_REPLICAS=str(replicas),
                             ZAPA_SPOOL_PATH=str(log_dir / f"durability-spool-{replicas}.db"),
                             ZAPA_RATE_LIMIT="off")
    core = Services(settings, KombuRedisLayout(app))
    core.redis.flushall()
    calls = sizes.durability_calls

    def send(k: int) -> None:
        core.outbox.enqueue(build_message(to=f"5511{k % 1000:09d}", text=f"m{k}",
                                          session="s1"))

    def webhook(k: int) -> None:
        core.intake.accept(parse_event(_received(k)))

    return Run(timed(send, calls), timed(webhook, calls))


def timed(call: Callable[[int], None], count: int) -> Calls:
    latencies = []
    started = time.perf_counter()
    for k in range(count):
        before = time.perf_counter()
        call(k)
        latencies.append((time.perf_counter() - before) * 1000)
    took = time.perf_counter() - started
    return Calls(count / took, percentile(latencies, 50), percentile(latencies, 99))


def _received(k: int) -> dict[str, object]:
    return {"sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
            "timestamp": 1795599514484,
            "data": {"from": "5511988887777@s.whatsapp.net", "to": "1234567890@s.whatsapp.net",
                     "messageId": f"3EB0{uuid.uuid4().hex[:16].upper()}{k}",
                     "timestamp": 1700000000000, "isGroup": False, "type": "text",
                     "text": "hello"}}
