"""Loop latency and capacity: inbound `message.received` events posted to the webhook at a
fixed rate, and the time from each POST to the echo reply reaching the zapw simulator; then
a rate above the target, for what the loop gets through.

The whole system runs as deployed: gunicorn, whose intake hands each message to the
built-in `zapa.echo` handler (`ZAPA_INBOUND_TASK=zapa.echo`) on worker processes, which
replies through `send_message`; the simulator accepts the reply and posts its receipt
webhooks back, as zapw does. Each reply carries the event's unique marker in its text. The
baseline is the same turn on a bare Flask route and bare Celery tasks; the two alternate,
in pairs (bench.pairs).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from bench.baseline_app import QUEUE as BASELINE_QUEUE
from bench.bridge import SESSION, SESSION_PHONE, start_simulator, wait_for_sends
from bench.environment import BASELINE_APP, OURS_APP, OURS_WSGI, BenchEnv
from bench.pairs import Pairs, alternate, median
from bench.processes import BenchError, run_module, wait_for
from bench.results import Row, Section, ceiling_row, floor_row, info_row, percentile
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
from zapa_bridge.simulator import SentMessage, Simulator
from zapa_bridge.store import keys

TITLE = "Loop latency"
TARGET_P50_MS = 15.0
TARGET_P99_MS = 60.0
TARGET_EVENTS_PER_SECOND = 200.0  # on the machine's 2 cores
TARGET_CPU_MS = 6.0  # per event, web + workers + Redis, outside the echo task
BASELINE_LOOP_WSGI = "bench.baseline_loop_web:app"
ECHO_PREFIX = "echo: bench "  # zapa.echo answers "echo: <text>"; the text is "bench <marker>"
INBOUND = {"ZAPA_INBOUND_TASK": "zapa.echo"}
LOOP_QUEUES = ("zapa.inbound", "zapa.send.default", BASELINE_QUEUE)
DRAIN_LIMIT = 90.0  # seconds an overloaded loop gets to finish its backlog
OVERLOADED_BELOW = 0.9  # replies/s below this share of the posting rate: it fell behind


@dataclass
class Pass:
    """One stretch of load at one rate."""

    rate: float
    posted: int
    measured: int  # events posted after the warm-up
    latencies: list[float]  # ms, of the measured events whose reply came
    replies_per_second: float  # what the loop got through meanwhile

    def p(self, q: float) -> float | None:
        return percentile(self.latencies, q)

    @property
    def overloaded(self) -> bool:
        return self.replies_per_second < OVERLOADED_BELOW * self.rate


@dataclass
class Turns:
    """One side's run of the loop: the pass at the latency rate, the relief pass if that
    one overloaded it, the capacity pass, and the CPU per event of the first."""

    main: Pass
    relief: Pass | None
    capacity: Pass
    usage: Usage  # of the main pass, in all (not per event)

    @property
    def cpu_ms(self) -> float | None:
        """Web, workers and Redis together, per event posted in the main pass."""
        per_event = self.usage.per_item(self.main.posted)
        return sum(per_event.cpu_seconds.values()) if self.main.posted else None


def run(env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    runs = alternate(sizes.pairs, lambda pair: turns(env, sizes, "baseline", pair),
                     lambda pair: turns(env, sizes, "ours", pair))
    section = Section(TITLE, method=method(env, sizes), rows=rows(env, sizes, runs))
    section.details += details(runs)
    return section


def turns(env: BenchEnv, sizes: Sizes, kind: str, pair: int) -> Turns:
    """One side's stack from an empty Redis, loaded at the latency rate, then above it."""
    env.flush()
    ours = kind == "ours"
    tag = f"loop-{kind}{pair}"
    web, port = env.start_web(OURS_WSGI if ours else BASELINE_LOOP_WSGI, tag, **INBOUND)
    workers = env.start_workers(OURS_APP if ours else BASELINE_APP, tag, **INBOUND)
    simulator = start_simulator(env.simulator_port, webhook_url=env.webhook_url(port))
    relief: Pass | None = None
    try:
        if ours:
            wait_for(lambda: _registry_says_connected(env), timeout=20,
                     what="the session.connected webhook handled")
        meter = UsageMeter(env.redis(), {
            "gunicorn (master + workers)": children_cpu([web]),
            "worker processes": children_cpu(workers),
            "redis-server": redis_server_cpu(env.redis()),
        }).start()
        main = load_pass(env, sizes, port, simulator, sizes.loop_rate, sizes.loop_seconds)
        usage = meter.stop()
        if main.overloaded and drained(env, simulator):
            relief = load_pass(env, sizes, port, simulator,
                               max(1.0, round(main.replies_per_second / 2)),
                               sizes.loop_seconds / 2)
        # A backlog left over would be counted as capacity: none may be.
        if not drained(env, simulator):
            raise BenchError(f"{kind}: the loop's backlog did not drain before the capacity "
                             "pass")
        capacity = load_pass(env, sizes, port, simulator, sizes.loop_capacity_rate,
                             sizes.loop_seconds / 2)
    finally:
        simulator.stop()
        env.children.stop(*workers, web)
    return Turns(main, relief, capacity, usage)


def load_pass(env: BenchEnv, sizes: Sizes, port: int, simulator: Simulator, rate: float,
              seconds: float) -> Pass:
    """Post at `rate` for `seconds`, then wait for the replies (bounded)."""
    before = len(simulator.sends())
    posted = post_events(env, sizes, port, rate, seconds)
    sends = wait_for_sends(simulator, before + len(posted), stall_after=10.0,
                           limit=DRAIN_LIMIT)[before:]
    first_measured = int(sizes.warmup_seconds * rate)
    measured = sum(1 for marker in posted if _index(marker) >= first_measured)
    latencies = reply_latencies(posted, sends, first_measured)
    span = (sends[-1].at - min(posted.values())) if sends and posted else 0.0
    return Pass(rate, len(posted), measured, latencies, len(sends) / span if span > 0 else 0.0)


def drained(env: BenchEnv, simulator: Simulator) -> bool:
    """Wait (bounded) until the backlog an overload left is gone."""
    client = env.redis()

    def empty() -> bool:
        count = len(simulator.sends())
        time.sleep(0.5)
        return (count == len(simulator.sends())
                and not any(client.llen(queue) for queue in LOOP_QUEUES))
    try:
        wait_for(empty, timeout=DRAIN_LIMIT, what="the loop's backlog drained", interval=0.5)
    except BenchError:
        return False
    return True


def rows(env: BenchEnv, sizes: Sizes, runs: Pairs[Turns]) -> list[Row]:
    rate, cores = sizes.loop_rate, env.workers
    p50 = runs.figure(lambda run: run.main.p(50))
    p99 = runs.figure(lambda run: run.main.p(99))
    within = runs.figure(lambda run: 100 * len(run.main.latencies) / run.main.measured
                         if run.main.measured else None)
    capacity = runs.figure(lambda run: run.capacity.replies_per_second)
    cpu = runs.figure(lambda run: run.cpu_ms)
    result = [
        ceiling_row(TITLE, f"POST to reply at {rate:g}/s, p50", p50.ours, p50.baseline, "ms",
                    TARGET_P50_MS, ratios=p50.ratios),
        ceiling_row(TITLE, f"POST to reply at {rate:g}/s, p99", p99.ours, p99.baseline, "ms",
                    TARGET_P99_MS, ratios=p99.ratios),
        info_row(TITLE, f"replies within the time allowed at {rate:g}/s", within.ours,
                 within.baseline, "%", ratios=within.ratios),
        floor_row(TITLE, f"events/s the loop gets through on {cores} cores (offered "
                         f"{sizes.loop_capacity_rate:g}/s)", capacity.ours, capacity.baseline,
                  "/s", TARGET_EVENTS_PER_SECOND, ratios=capacity.ratios),
        ceiling_row(TITLE, f"CPU per event outside the echo task (web + workers + Redis, at "
                           f"{rate:g}/s)", cpu.ours, cpu.baseline, "ms", TARGET_CPU_MS,
                    ratios=cpu.ratios),
    ]
    reliefs = [run.relief for run in runs.ours if run.relief is not None]
    if reliefs:
        at = median([relief.rate for relief in reliefs])
        result += [
            info_row(TITLE, f"POST to reply, ours overloaded, at half what it got through "
                            f"(~{at:g}/s, {len(reliefs)} of {len(runs.ours)} runs), p50",
                     median([relief.p(50) for relief in reliefs]), None, "ms"),
            info_row(TITLE, "the same, p99", median([relief.p(99) for relief in reliefs]),
                     None, "ms"),
        ]
    return result


def details(runs: Pairs[Turns]) -> list[str]:
    lines = []
    for name, sides in (("ours", runs.ours), ("baseline", runs.baseline)):
        for index, run in enumerate(sides, 1):
            main = run.main
            lines.append(f"- {name}, pair {index}: events measured at {main.rate:g}/s: "
                         f"{main.measured:,}; replies matched: {len(main.latencies):,}; "
                         f"slowest: {max(main.latencies, default=0):.1f} ms; got through "
                         f"{main.replies_per_second:.0f}/s there and "
                         f"{run.capacity.replies_per_second:.0f}/s offered "
                         f"{run.capacity.rate:g}/s.")
    ours, baseline = per_event(runs.ours), per_event(runs.baseline)
    lines.append("The tables add up every pair's first pass.")
    return [*lines, "", cpu_table(ours, baseline, "event (web, echo, send, receipts)"), "",
            commands_table(ours, baseline, "event")]


def per_event(runs: tuple[Turns, ...]) -> Usage:
    return pooled([run.usage for run in runs]).per_item(sum(run.main.posted for run in runs))


def post_events(env: BenchEnv, sizes: Sizes, port: int, rate: float,
                seconds: float) -> dict[str, float]:
    """Post at `rate`; when each event was posted, by its marker."""
    out = env.log_dir / f"loop-load-{rate:g}.json"
    run_module("bench.loadgen", [
        "--url", env.webhook_url(port), "--seconds", str(seconds),
        "--warmup", str(sizes.warmup_seconds), "--rate", str(rate),
        "--connections", "32", "--senders", str(sizes.loop_senders),
        "--session", SESSION, "--phone", SESSION_PHONE, "--record-posts", "--out", str(out),
    ], env.child_env(), timeout=seconds + 60)
    return dict(json.loads(out.read_text())["posted"])


def reply_latencies(posted: dict[str, float], sends: list[SentMessage],
                    first_measured: int) -> list[float]:
    """Milliseconds from each measured event's POST to its echo reply's acceptance."""
    latencies = []
    for send in sends:
        text = str(send.body.get("text", ""))
        if not text.startswith(ECHO_PREFIX):
            continue
        marker = text.removeprefix(ECHO_PREFIX)
        if marker in posted and _index(marker) >= first_measured:
            latencies.append((send.at - posted[marker]) * 1000)
    return latencies


def _index(marker: str) -> int:
    return int(marker.rpartition("-")[2])


def _registry_says_connected(env: BenchEnv) -> bool:
    raw = env.redis().hget(keys.SESSIONS, SESSION)
    return bool(raw) and json.loads(raw).get("status") == "connected"


def method(env: BenchEnv, sizes: Sizes) -> list[str]:
    return [
        f"`bench.loadgen` posts `message.received` events at {sizes.loop_rate:g}/s for "
        f"{sizes.loop_seconds:g} s on a fixed schedule (open loop), each on a new "
        "connection as zapw does, from "
        f"{sizes.loop_senders:,} senders in turn; the first {sizes.warmup_seconds:g} s are "
        "not measured. `ZAPA_RATE_LIMIT=off`: the default 5 sends per 5 s and session would "
        "hold the replies back by design. If ours cannot keep up with that rate on this "
        "machine, the backlog is left to drain and a shorter pass runs at half the "
        "rate it got through, to show the latency of the path when it is not queueing.",
        f"Capacity: once the backlog is gone, a pass of {sizes.loop_seconds / 2:g} s offers "
        f"{sizes.loop_capacity_rate:g}/s, above the target of "
        f"{TARGET_EVENTS_PER_SECOND:g}/s, and the row is the replies the simulator accepted "
        "per second, from the first POST to the last reply (the backlog drained, bounded, "
        f"counted in): what the loop gets through on {env.workers} worker processes and one "
        "gunicorn sharing this machine's cores.",
        f"The path measured: gunicorn (as above), then {env.workers} worker processes "
        "(Procfile) with `ZAPA_INBOUND_TASK=zapa.echo`. The web process records each "
        "`message.received` and queues `zapa.echo` on `zapa.inbound` in the intake's one "
        "Lua call; `zapa.echo` calls `send_message.delay` (`zapa.send.default`), whose task "
        "posts the reply to the simulator: two Celery hops. The simulator posts its "
        "`message.sent` receipt webhooks back meanwhile, as zapw does, and the intake "
        "applies them itself (receipts on).",
        "Baseline, in the same run: the same turn bare. `bench.baseline_loop_web`, a Flask "
        "route at the webhook's path under the same gunicorn.conf.py, hands each "
        "`message.received` text to `bench.bare_echo` (no token check, record or dedup); "
        "that task queues `bench.bare_send`, which posts `echo: <text>` to the simulator "
        "(`bench.baseline_app`, as many workers, the same settings); receipts are answered "
        "200 unread. Latency and capacity alike.",
        f"In pairs, A B A B: the baseline's stack (all its passes), then ours, {sizes.pairs} "
        "times, each from an empty Redis and freshly started processes; a ratio is the "
        "median of the pairs' ratios, the range their lowest and highest, and ours and the "
        "baseline each side's median.",
        "CPU per event outside the echo task: the CPU of gunicorn (master and workers), "
        "the worker processes and Redis (`INFO cpu`) over the first pass, divided by the "
        "events posted in it. The echo task's run is counted in as well, so the figure is an "
        "upper bound on the CPU outside it: what is the echo's own is its body, "
        "`echo_reply` building one dict and one string, microseconds; its Celery hop and the "
        "`send_message.delay` it calls are the bridge's turn, not the handler's, and belong "
        "in the figure. A handler that did real work would add its own CPU on top; the echo "
        "stands in for one that adds nothing.",
        "Latency: from the moment the load generator wrote the POST to the moment the "
        "simulator accepted the reply (`SentMessage.at`), both `time.time()` on this one "
        "machine.",
    ]
