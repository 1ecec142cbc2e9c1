"""Webhook intake: zapw-shaped `message.received` events, each with a unique id, posted to
the webhook under gunicorn (gunicorn.conf.py, as the Procfile runs it) by a load generator
with a bounded number of connections, kept alive as a reverse proxy keeps its upstream
ones (the main figure), then each event on a new connection as zapw's sender posts them.
The baseline is a bare Flask route at the same path answering 200, under the same server
settings; the two alternate, in pairs (bench.pairs)."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.bridge import SESSION, SESSION_PHONE
from bench.environment import BASELINE_WSGI, OURS_WSGI, BenchEnv
from bench.pairs import Pairs, alternate
from bench.processes import Child, run_module
from bench.profiling import ProfileSummary, Sampler
from bench.results import (
    Section,
    ceiling_row,
    info_row,
    pairs_note,
    percentile,
    ratio_row,
    spread_row,
)
from bench.sizes import Sizes
from bench.usage import (
    Usage,
    UsageMeter,
    children_cpu,
    commands_table,
    cpu_table,
    pooled,
    redis_server_cpu,
)

TITLE = "Webhook intake"
TARGET_RATIO = 0.8
TARGET_SPREAD = 0.05  # the pair ratios' range, highest less lowest
TARGET_P99_MS = 50.0
# gunicorn answers once one worker has loaded the app; the other may still be loading it,
# which is start-up, not intake.
SETTLE_SECONDS = 1.0


@dataclass
class Load:
    """What one server answered to one load."""

    per_second: float
    p50_ms: float | None
    p99_ms: float | None
    answered: int
    statuses: dict[str, int]
    errors: dict[str, int]
    usage: Usage  # of the measured stretch, in all (not per request)
    profile: ProfileSummary | None = None


@dataclass
class Served:
    """One server's two loads: connections kept alive, then a new one per event."""

    kept: Load
    new: Load


def run(env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    served = alternate(sizes.pairs,
                       lambda pair: serve(env, sizes, BASELINE_WSGI, f"baseline{pair}"),
                       lambda pair: serve(env, sizes, OURS_WSGI, f"ours{pair}"))
    kept_rate = served.figure(lambda run: run.kept.per_second)
    kept_p50 = served.figure(lambda run: run.kept.p50_ms)
    kept_p99 = served.figure(lambda run: run.kept.p99_ms)
    new_rate = served.figure(lambda run: run.new.per_second)
    new_p99 = served.figure(lambda run: run.new.p99_ms)
    in_flight = sizes.webhook_connections
    section = Section(TITLE, method=method(sizes), rows=[
        ratio_row(TITLE, f"requests/s ({in_flight} kept-alive connections, as a proxy)",
                  kept_rate.ours, kept_rate.baseline, "req/s", TARGET_RATIO,
                  ratios=kept_rate.ratios),
        spread_row(TITLE, "spread of that ratio (highest less lowest pair ratio)",
                   kept_rate.ratios, TARGET_SPREAD),
        info_row(TITLE, "p50 latency (kept alive)", kept_p50.ours, kept_p50.baseline, "ms",
                 ratios=kept_p50.ratios),
        ceiling_row(TITLE, "p99 latency (kept alive)", kept_p99.ours, kept_p99.baseline, "ms",
                    TARGET_P99_MS, ratios=kept_p99.ratios),
        info_row(TITLE, f"requests/s ({in_flight} in flight, a new connection per event "
                        "as zapw)", new_rate.ours, new_rate.baseline, "req/s",
                 ratios=new_rate.ratios),
        info_row(TITLE, "p99 latency (a new connection per event)", new_p99.ours,
                 new_p99.baseline, "ms", ratios=new_p99.ratios),
    ])
    section.details += [pairs_note("Requests/s kept alive", kept_rate, "req/s"),
                        pairs_note("Requests/s, a new connection per event", new_rate,
                                   "req/s"), ""]
    section.details += details(served)
    if profile:
        with running_web(env, OURS_WSGI, "ours-profiled") as (web, port):
            sampled = load(env, sizes, web, port, "ours-profiled", sizes.profile_seconds,
                           keep_alive=True,
                           profile_title="Webhook: the gunicorn workers (ours, kept alive)")
        if sampled.profile is not None:
            section.profiles.append(sampled.profile)
    return section


def serve(env: BenchEnv, sizes: Sizes, wsgi_app: str, tag: str) -> Served:
    """One server from an empty Redis, loaded with kept-alive connections, then with a new
    connection per event."""
    seconds = sizes.webhook_seconds
    with running_web(env, wsgi_app, tag) as (web, port):
        kept = load(env, sizes, web, port, f"{tag}-kept", seconds, keep_alive=True)
        new = load(env, sizes, web, port, f"{tag}-new", seconds, keep_alive=False)
    return Served(kept, new)


@contextmanager
def running_web(env: BenchEnv, wsgi_app: str, tag: str) -> Iterator[tuple[Child, int]]:
    env.flush()
    web, port = env.start_web(wsgi_app, tag)
    try:
        time.sleep(SETTLE_SECONDS)
        yield web, port
    finally:
        env.children.stop(web)


def load(env: BenchEnv, sizes: Sizes, web: Child, port: int, tag: str, seconds: float, *,
         keep_alive: bool, profile_title: str | None = None) -> Load:
    out = env.log_dir / f"{tag}-webhook.json"
    sampler: Sampler | None = None
    summary: ProfileSummary | None = None
    try:
        meter = UsageMeter(env.redis(), {
            "gunicorn (master + workers)": children_cpu([web]),
            "redis-server": redis_server_cpu(env.redis()),
        }).start()
        sampler = (Sampler(profile_title, web.pid, env.log_dir / f"{tag}-webhook.raw",
                           subprocesses=True) if profile_title else None)
        loadgen_before = _children_cpu()
        run_module("bench.loadgen", [
            "--url", env.webhook_url(port), "--seconds", str(seconds),
            "--warmup", str(sizes.warmup_seconds),
            "--connections", str(sizes.webhook_connections),
            "--session", SESSION, "--phone", SESSION_PHONE, "--out", str(out),
            *(["--keep-alive"] if keep_alive else []),
        ], env.child_env(), timeout=seconds + 60)
        usage = meter.stop()
        usage.cpu_seconds["load generator"] = _children_cpu() - loadgen_before
    finally:
        if sampler is not None:
            summary = sampler.stop()
    result = json.loads(out.read_text())
    latencies = result["latencies_ms"]
    answered = result["answered"]
    return Load(answered / result["measured_seconds"], percentile(latencies, 50),
                percentile(latencies, 99), answered, result["statuses"], result["errors"],
                usage, summary)


def _children_cpu() -> float:
    """CPU seconds of the children this process has waited for (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def method(sizes: Sizes) -> list[str]:
    return [
        f"`bench.loadgen`, a process of its own, posts for {sizes.webhook_seconds:g} s with "
        f"{sizes.webhook_connections} requests in flight (closed loop: each client posts again "
        f"once answered); the first {sizes.warmup_seconds:g} s are not measured. Each event "
        "is zapw's `message.received` envelope, shaped by the simulator's own code, with a "
        "unique message id, so every one is authenticated (`?token=`), parsed, and "
        "deduplicated, recorded and queued for the inbound task (one Lua call).",
        "Two loads on each server, one after the other: first the connections are kept "
        "alive (HTTP/1.1, reopened only when gunicorn closes one), as a reverse proxy in "
        "front of gunicorn keeps its upstream connections; this is the main figure. Then "
        "each event on a new connection, as zapw's webhook sender posts them (one "
        "`requests.post` per event), which adds a TCP connect and gunicorn's accept to "
        "every request and spreads the requests over gunicorn's processes one by one, "
        "where kept-alive connections stay with the process that accepted them.",
        "Ours: `gunicorn -c gunicorn.conf.py 'zapa_bridge.web:create_app()'` (gevent "
        "workers, `WEB_CONCURRENCY` 2 processes, access log on), "
        "`ZAPA_ENV=production`. No worker runs meanwhile: the events wait in Redis, "
        "and the figure is the web process's alone.",
        "Baseline, in the same run: `bench.baseline_web`, a bare Flask route at the same path "
        "answering an empty 200, under the same gunicorn.conf.py.",
        f"In pairs, A B A B: the baseline's server (both loads), then ours, {sizes.pairs} "
        "times, each from an empty Redis; a ratio is the median of the pairs' ratios, the "
        "range their lowest and highest, and ours and the baseline each side's median.",
        f"The spread of the ratio is that range as one number, the highest pair ratio less "
        f"the lowest, against the issue's <= {TARGET_SPREAD:g}: a median of pairs that "
        "disagree by more says little about a change of 0.05.",
    ]


def details(served: Pairs[Served]) -> list[str]:
    lines = []
    for name, runs in (("ours", served.ours), ("baseline", served.baseline)):
        for index, run in enumerate(runs, 1):
            for mode, done in (("kept alive", run.kept), ("a new connection each", run.new)):
                other = {code: n for code, n in done.statuses.items() if code != "200"}
                if other or done.errors:
                    lines.append(f"**{name}, pair {index}, {mode}: answers other than 200: "
                                 f"{other or 'none'}; connection errors: "
                                 f"{done.errors or 'none'}.**")
    kept_ours, kept_base = per_request(served.ours, True), per_request(served.baseline, True)
    new_ours, new_base = per_request(served.ours, False), per_request(served.baseline, False)
    answered = {name: sum(run.kept.answered + run.new.answered for run in runs)
                for name, runs in (("ours", served.ours), ("baseline", served.baseline))}
    lines.append(f"Answered in the measured time, all pairs and both loads: ours "
                 f"{answered['ours']:,}, baseline {answered['baseline']:,}. The tables add "
                 "up every pair's measured stretches.")
    lines += ["", cpu_table(kept_ours, kept_base, "request, kept alive"), "",
              cpu_table(new_ours, new_base, "request, a new connection each"), "",
              commands_table(kept_ours, kept_base, "request")]
    return lines


def per_request(runs: tuple[Served, ...], kept: bool) -> Usage:
    loads = [run.kept if kept else run.new for run in runs]
    return pooled([done.usage for done in loads]).per_item(sum(done.answered for done in loads))
