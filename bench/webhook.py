"""Webhook intake: zapw-shaped `message.received` events, each with a unique id, posted to
the webhook under gunicorn (gunicorn.conf.py, as the Procfile runs it) by a load generator
with a bounded number of keep-alive connections; the baseline is a bare Flask route at the
same path answering 200, under the same server settings."""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass

from bench.bridge import SESSION, SESSION_PHONE
from bench.environment import BASELINE_WSGI, OURS_WSGI, BenchEnv
from bench.processes import run_module
from bench.profiling import ProfileSummary, Sampler
from bench.results import Section, ceiling_row, info_row, percentile, ratio_row
from bench.sizes import Sizes
from bench.usage import Usage, UsageMeter, children_cpu, commands_table, cpu_table, pid_cpu

TITLE = "Webhook intake"
TARGET_RATIO = 0.6
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
    usage: Usage
    profile: ProfileSummary | None = None


def run(env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    seconds = sizes.webhook_seconds
    baseline = load(env, sizes, BASELINE_WSGI, "baseline", seconds)
    ours = load(env, sizes, OURS_WSGI, "ours", seconds)
    section = Section(TITLE, method=method(sizes), rows=[
        ratio_row(TITLE, f"requests/s ({sizes.webhook_connections} in flight)",
                  ours.per_second, baseline.per_second, "req/s", TARGET_RATIO),
        info_row(TITLE, "p50 latency", ours.p50_ms, baseline.p50_ms, "ms"),
        ceiling_row(TITLE, "p99 latency", ours.p99_ms, baseline.p99_ms, "ms", TARGET_P99_MS),
    ])
    section.details += details(ours, baseline)
    if profile:
        sampled = load(env, sizes, OURS_WSGI, "ours-profiled", sizes.profile_seconds,
                       profile_title="Webhook: the gunicorn workers (ours)")
        if sampled.profile is not None:
            section.profiles.append(sampled.profile)
    return section


def load(env: BenchEnv, sizes: Sizes, wsgi_app: str, tag: str, seconds: float, *,
         profile_title: str | None = None) -> Load:
    env.flush()
    web, port = env.start_web(wsgi_app, tag)
    out = env.log_dir / f"{tag}-webhook.json"
    sampler: Sampler | None = None
    summary: ProfileSummary | None = None
    try:
        time.sleep(SETTLE_SECONDS)
        meter = UsageMeter(env.redis(), {
            "gunicorn (master + workers)": children_cpu([web]),
            "redis-server": pid_cpu(env.redis_server.process.pid),  # type: ignore[union-attr]
        }).start()
        sampler = (Sampler(profile_title, web.pid, env.log_dir / f"{tag}-webhook.raw",
                           subprocesses=True) if profile_title else None)
        loadgen_before = _children_cpu()
        run_module("bench.loadgen", [
            "--url", env.webhook_url(port), "--seconds", str(seconds),
            "--warmup", str(sizes.warmup_seconds),
            "--connections", str(sizes.webhook_connections),
            "--session", SESSION, "--phone", SESSION_PHONE, "--out", str(out),
        ], env.child_env(), timeout=seconds + 60)
        usage = meter.stop()
        usage.cpu_seconds["load generator"] = _children_cpu() - loadgen_before
    finally:
        if sampler is not None:
            summary = sampler.stop()
        env.children.stop(web)
    result = json.loads(out.read_text())
    latencies = result["latencies_ms"]
    answered = result["answered"]
    return Load(answered / result["measured_seconds"], percentile(latencies, 50),
                percentile(latencies, 99), answered, result["statuses"], result["errors"],
                usage.per_item(answered), summary)


def _children_cpu() -> float:
    """CPU seconds of the children this process has waited for (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def method(sizes: Sizes) -> list[str]:
    return [
        f"`bench.loadgen`, a process of its own, posts for {sizes.webhook_seconds:g} s with "
        f"{sizes.webhook_connections} requests in flight (closed loop: each client posts again "
        "once answered), each on a new connection as zapw's webhook sender does (one "
        "`requests.post` per event), which also spreads them over gunicorn's processes; the "
        f"first {sizes.warmup_seconds:g} s are not measured. Each event "
        "is zapw's `message.received` envelope, shaped by the simulator's own code, with a "
        "unique message id, so every one is authenticated (`?token=`), parsed, and "
        "deduplicated and queued for `zapa.handle_event` (one Lua call).",
        "Ours: `gunicorn -c gunicorn.conf.py 'zapa_bridge.web:create_app()'` (gevent "
        "workers, `WEB_CONCURRENCY` 2 processes, access log on), "
        "`ZAPA_ENV=production`. No worker runs meanwhile: the events wait in `zapa.events`, "
        "and the figure is the web process's alone.",
        "Baseline, in the same run: `bench.baseline_web`, a bare Flask route at the same path "
        "answering an empty 200, under the same gunicorn.conf.py.",
    ]


def details(ours: Load, baseline: Load) -> list[str]:
    lines = []
    for name, served in (("ours", ours), ("baseline", baseline)):
        other = {code: n for code, n in served.statuses.items() if code != "200"}
        if other or served.errors:
            lines.append(f"**{name}: answers other than 200: {other or 'none'}; connection "
                         f"errors: {served.errors or 'none'}.**")
    lines.append(f"Answered in the measured time: ours {ours.answered:,}, baseline "
                 f"{baseline.answered:,}.")
    lines += ["", cpu_table(ours.usage, baseline.usage, "request"), "",
              commands_table(ours.usage, baseline.usage, "request")]
    return lines
