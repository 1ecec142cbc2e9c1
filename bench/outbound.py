"""Outbound throughput: N text messages through `send_message` to the zapw simulator, drained
by worker processes started as the Procfile starts them; the baseline is a bare Celery task
doing one keep-alive POST to the same endpoint, on the same worker settings. The two drain
alternately, in pairs (bench.pairs).

The messages are queued first, workers stopped; then the workers start together, and the
rate is counted from the moment all of them are ready to the last send the simulator
accepted, so start-up is not measured. Redis's own CPU over that stretch, per send, gives
the send rate one Redis could carry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench import enqueue as producer
from bench.bridge import start_simulator, wait_for_sends
from bench.environment import BASELINE_APP, OURS_APP, BenchEnv
from bench.pairs import Pairs, alternate
from bench.processes import Child
from bench.producers import enqueue_together
from bench.profiling import ProfileSummary, Sampler
from bench.results import Section, ceiling_row, floor_row, fmt, info_row, pairs_note, ratio_row
from bench.sizes import Sizes
from bench.usage import (
    Usage,
    UsageMeter,
    children_cpu,
    commands_table,
    cpu_table,
    pooled,
    redis_server_cpu,
    this_process_cpu,
)

TITLE = "Outbound throughput"
TARGET_RATIO = 0.8
TARGET_REDIS_MS = 0.25  # Redis CPU per sent message
TARGET_REDIS_SENDS = 1000 / TARGET_REDIS_MS  # what one Redis then carries: 4,000 sends/s
PRODUCERS = 2  # fill the backlog faster; the enqueue path's own speed is the scale benchmark's
STALL_SECONDS = 30.0
REDIS = "redis-server"


@dataclass
class Drain:
    """One drained backlog."""

    queued: int
    accepted: int  # sends the simulator accepted in all
    sent: int  # of which while every worker was up
    seconds: float
    usage: Usage  # of the measured stretch, in all (not per message)
    enqueue_redis_seconds: float  # Redis's CPU while the backlog was queued
    profile: ProfileSummary | None = None

    @property
    def per_second(self) -> float | None:
        return self.sent / self.seconds if self.seconds > 0 else None

    @property
    def redis_ms(self) -> float | None:
        """Redis's CPU per message sent in the measured stretch, in milliseconds."""
        if not self.sent or REDIS not in self.usage.cpu_seconds:
            return None
        return 1000 * self.usage.cpu_seconds[REDIS] / self.sent

    @property
    def redis_ceiling(self) -> float | None:
        """Sends per second one Redis could carry at that cost: Redis runs commands on one
        thread, so one core is its limit."""
        cost = self.redis_ms
        return 1000 / cost if cost else None


def run(env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    count, recipients = sizes.outbound_messages, sizes.outbound_recipients
    drains = alternate(sizes.pairs, lambda _: drain(env, "baseline", count, recipients),
                       lambda _: drain(env, "ours", count, recipients))
    # Every message its own conversation: no message waits for an earlier one, so each is
    # published by its producer as the baseline's are, not by the worker that sent the one
    # before it. The difference is what conversation order costs.
    solo_count = sizes.outbound_solo_messages
    solos = alternate(sizes.pairs, lambda _: drain(env, "baseline", solo_count, 0),
                      lambda _: drain(env, "ours", solo_count, 0))
    rate = drains.figure(lambda run: run.per_second)
    solo_rate = solos.figure(lambda run: run.per_second)
    redis_ms = drains.figure(lambda run: run.redis_ms)
    ceiling = drains.figure(lambda run: run.redis_ceiling)
    section = Section(TITLE, method=method(env, sizes), rows=[
        ratio_row(TITLE, f"messages/s ({count:,} msgs, {env.workers} workers)",
                  rate.ours, rate.baseline, "msg/s", TARGET_RATIO, ratios=rate.ratios),
        info_row(TITLE, f"messages/s, each its own conversation ({solo_count:,} msgs)",
                 solo_rate.ours, solo_rate.baseline, "msg/s", ratios=solo_rate.ratios),
        ceiling_row(TITLE, "Redis CPU per sent message (INFO cpu, while draining)",
                    redis_ms.ours, redis_ms.baseline, "ms", TARGET_REDIS_MS,
                    ratios=redis_ms.ratios),
        floor_row(TITLE, "sends/s one Redis could carry at that (1 / Redis CPU per send)",
                  ceiling.ours, ceiling.baseline, "msg/s", TARGET_REDIS_SENDS,
                  ratios=ceiling.ratios),
    ])
    section.details += [pairs_note("messages/s", rate, "msg/s"),
                        pairs_note("Redis CPU per sent message", redis_ms, "ms"), ""]
    section.details += [pairs_note("messages/s, each its own conversation", solo_rate,
                                   "msg/s"), ""]
    section.details += details(drains, solos)
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
    redis_cpu = redis_server_cpu(env.redis())
    try:
        before_enqueue = redis_cpu()
        enqueue_together(env, kind, 0, count, PRODUCERS, recipients)
        enqueue_redis_seconds = redis_cpu() - before_enqueue
        app = OURS_APP if kind == "ours" else BASELINE_APP
        workers = env.start_workers(app, f"{kind}-outbound")
        meter = UsageMeter(env.redis(), {
            "worker processes": children_cpu(workers),
            REDIS: redis_cpu,
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
    return Drain(count, len(sends), len(timed), seconds, usage, enqueue_redis_seconds,
                 summary)


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
        f"In pairs, A B A B: the baseline's drain, then ours, {sizes.pairs} times, each from "
        "an empty Redis; the ratio is the median of the pairs' ratios, the range their lowest "
        "and highest, and ours and the baseline each side's median.",
        "Redis CPU per sent message: the server's own `used_cpu_user + used_cpu_sys` (`INFO "
        "cpu`) over the measured stretch, divided by the sends in it. It counts everything "
        "Redis did meanwhile for the workers, Celery's fetches and acks included. Redis runs "
        "commands on one thread, so 1 / that cost is the send rate at which one Redis would "
        "be a full core busy: a ceiling for one Redis, whatever the number of workers. "
        f"The targets: <= {TARGET_REDIS_MS:g} ms per send, so >= {TARGET_REDIS_SENDS:,.0f} "
        "sends/s on one Redis.",
        f"Both again with {sizes.outbound_solo_messages:,} messages to as many recipients, "
        "in pairs the same way (an informative row): with "
        f"{sizes.outbound_messages // sizes.outbound_recipients} "
        "messages per conversation a worker publishes each "
        "next message when it has sent the one before, so most of ours' Celery publishes "
        "happen during the drain, where all of the baseline's happened before it.",
        "The zapw simulator runs in the runner's process and posts no webhooks here.",
    ]


def details(drains: Pairs[Drain], solos: Pairs[Drain]) -> list[str]:
    lines = []
    named = [*((f"baseline, pair {i}", run) for i, run in enumerate(drains.baseline, 1)),
             *((f"ours, pair {i}", run) for i, run in enumerate(drains.ours, 1)),
             *((f"baseline, solo, pair {i}", run) for i, run in enumerate(solos.baseline, 1)),
             *((f"ours, solo, pair {i}", run) for i, run in enumerate(solos.ours, 1))]
    for name, drained in named:
        if drained.accepted < drained.queued:
            lines.append(f"**{name}: only {drained.accepted:,} of {drained.queued:,} messages "
                         "reached the simulator** (the run stalled or timed out).")
    ours = pooled([run.usage for run in drains.ours]).per_item(sum(r.sent for r in drains.ours))
    baseline = pooled([run.usage for run in drains.baseline]).per_item(
        sum(run.sent for run in drains.baseline))
    solo_usage = pooled([run.usage for run in solos.ours]).per_item(
        sum(run.sent for run in solos.ours))
    solo_cpu = sum(solo_usage.cpu_seconds.values())
    lines += [f"The tables add up every pair's measured stretch ({len(drains.ours)} of each).",
              "", cpu_table(ours, baseline, "message"), "",
              commands_table(ours, baseline, "message"), "",
              f"Each message its own conversation (ours, all pairs): {solo_cpu:.2f} ms of CPU "
              "in all and "
              f"{sum(solo_usage.redis_commands.values()):.1f} Redis commands per message.", "",
              *redis_whole_path(drains)]
    return lines


def redis_whole_path(drains: Pairs[Drain]) -> list[str]:
    """Redis's CPU for queueing and sending together: what one Redis carries end to end."""
    lines = []
    for name, runs in (("ours", drains.ours), ("baseline", drains.baseline)):
        sent = sum(run.sent for run in runs)
        queued = sum(run.queued for run in runs)
        drain_ms = 1000 * sum(run.usage.cpu_seconds.get(REDIS, 0.0) for run in runs) / max(1, sent)
        enqueue_ms = 1000 * sum(run.enqueue_redis_seconds for run in runs) / max(1, queued)
        whole = drain_ms + enqueue_ms
        lines.append(f"- {name}: Redis CPU {fmt(enqueue_ms, 'ms')} per message to queue it "
                     f"and {fmt(drain_ms, 'ms')} to send it; {fmt(whole, 'ms')} in all, so one "
                     f"Redis would carry about {fmt(1000 / whole if whole else None, 'msg/s')} "
                     "queued and sent.")
    return ["Redis CPU per message, queueing and sending together (all pairs):", "", *lines]
