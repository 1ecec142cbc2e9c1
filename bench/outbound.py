"""Outbound throughput: N text messages through `send_message` to the zapw simulator, drained
by worker processes started as the Procfile starts them; the baseline is a bare Celery task
doing one keep-alive POST to the same endpoint, on the same worker settings.

The messages are queued first, workers stopped; then the workers start together, and the
rate is counted from the moment all of them are ready to the last send the simulator
accepted, so start-up is not measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench import enqueue as producer
from bench.bridge import start_simulator, wait_for_sends
from bench.environment import BASELINE_APP, OURS_APP, BenchEnv
from bench.processes import Child
from bench.producers import enqueue_together
from bench.profiling import ProfileSummary, Sampler
from bench.results import Section, info_row, ratio_row
from bench.sizes import Sizes
from bench.usage import (
    Usage,
    UsageMeter,
    children_cpu,
    commands_table,
    cpu_table,
    pid_cpu,
    this_process_cpu,
)

TITLE = "Outbound throughput"
TARGET_RATIO = 0.8
PRODUCERS = 2  # fill the backlog faster; the enqueue path's own speed is the scale benchmark's
STALL_SECONDS = 30.0


@dataclass
class Drain:
    """One drained backlog."""

    queued: int
    accepted: int  # sends the simulator accepted in all
    sent: int  # of which while every worker was up
    seconds: float
    usage: Usage
    profile: ProfileSummary | None = None

    @property
    def per_second(self) -> float | None:
        return self.sent / self.seconds if self.seconds > 0 else None


def run(env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    count, recipients = sizes.outbound_messages, sizes.outbound_recipients
    baseline = drain(env, "baseline", count, recipients)
    ours = drain(env, "ours", count, recipients)
    # Every message its own conversation: no message waits for an earlier one, so each is
    # published by its producer as the baseline's are, not by the worker that sent the one
    # before it. The difference is what conversation order costs.
    solo = drain(env, "ours", sizes.outbound_solo_messages, 0)
    section = Section(TITLE, method=method(env, sizes), rows=[
        ratio_row(TITLE, f"messages/s ({count:,} msgs, {env.workers} workers)",
                  ours.per_second, baseline.per_second, "msg/s", TARGET_RATIO),
        info_row(TITLE, f"messages/s, each its own conversation ({solo.queued:,} msgs)",
                 solo.per_second, baseline.per_second, "msg/s"),
    ])
    section.details += details(ours, baseline, solo)
    if profile:
        sampled = drain(env, "ours", sizes.outbound_profile_messages, recipients,
                        profile_title="Outbound: one worker process (ours)")
        if sampled.profile is not None:
            section.profiles.append(sampled.profile)
    return section


def drain(env: BenchEnv, kind: str, count: int, recipients: int, *,
          profile_title: str | None = None) -> Drain:
    env.flush()
    simulator = start_simulator(env.simulator_port)
    workers: list[Child] = []
    sampler: Sampler | None = None
    summary: ProfileSummary | None = None
    try:
        enqueue_together(env, kind, 0, count, PRODUCERS, recipients)
        app = OURS_APP if kind == "ours" else BASELINE_APP
        workers = env.start_workers(app, f"{kind}-outbound")
        meter = UsageMeter(env.redis(), {
            "worker processes": children_cpu(workers),
            "redis-server": pid_cpu(env.redis_server.process.pid),  # type: ignore[union-attr]
            "zapw simulator": this_process_cpu,
        }).start()
        sampler = (Sampler(profile_title, workers[0].pid, env.log_dir / f"{kind}-outbound.raw")
                   if profile_title else None)
        ready_at = time.time()
        sends = wait_for_sends(simulator, count, stall_after=STALL_SECONDS,
                               limit=max(120.0, count / 20))
        usage = meter.stop()
    finally:
        if sampler is not None:
            summary = sampler.stop()
        env.children.stop(*workers)
        simulator.stop()
    timed = [send.at for send in sends if send.at >= ready_at]
    seconds = timed[-1] - ready_at if timed else 0.0
    return Drain(count, len(sends), len(timed),
                 seconds, usage.per_item(len(timed)), summary)


def method(env: BenchEnv, sizes: Sizes) -> list[str]:
    return [
        f"{sizes.outbound_messages:,} text messages of {producer.TEXT_CHARS} characters, "
        f"queued first by {PRODUCERS} producer processes (`send_message.delay(to=..., "
        f"text=..., session=...)`, one call each), spread over {sizes.outbound_recipients:,} "
        "recipients: messages of one conversation are sent strictly in order, one at a "
        "time, so fewer conversations would measure that order rather than throughput.",
        f"Then {env.workers} worker processes start together, each as the Procfile's "
        "`worker` line (thread pool, `ZAPA_WORKER_CONCURRENCY` default 8, acks late, "
        "prefetch 1), with `ZAPA_RATE_LIMIT=off`; the rate counts the sends the simulator "
        "accepted from the moment all workers were ready to the last one.",
        "Baseline, in the same run: `bench.baseline_app`, a bare Celery task posting the "
        "same body with a shared keep-alive `requests` session, queued the same way and "
        "drained by as many workers with the same settings (celeryconfig's).",
        f"Ours again with {sizes.outbound_solo_messages:,} messages to as many recipients "
        f"(an informative row): with {sizes.outbound_messages // sizes.outbound_recipients} "
        "messages per conversation a worker publishes each "
        "next message when it has sent the one before, so most of ours' Celery publishes "
        "happen during the drain, where all of the baseline's happened before it.",
        "The zapw simulator runs in the runner's process and posts no webhooks here.",
    ]


def details(ours: Drain, baseline: Drain, solo: Drain) -> list[str]:
    lines = []
    for name, drained in (("ours", ours), ("baseline", baseline), ("ours, solo", solo)):
        if drained.accepted < drained.queued:
            lines.append(f"**{name}: only {drained.accepted:,} of {drained.queued:,} messages "
                         "reached the simulator** (the run stalled or timed out).")
    solo_cpu = sum(solo.usage.cpu_seconds.values())
    lines += ["", cpu_table(ours.usage, baseline.usage, "message"), "",
              commands_table(ours.usage, baseline.usage, "message"), "",
              f"Each message its own conversation: {solo_cpu:.2f} ms of CPU in all and "
              f"{sum(solo.usage.redis_commands.values()):.1f} Redis commands per message."]
    return lines
