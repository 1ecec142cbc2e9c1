"""Loop latency: inbound `message.received` events posted to the webhook at a fixed rate, and
the time from each POST to the echo reply reaching the zapw simulator.

The whole system runs as deployed: gunicorn, worker processes handling the events and
running the built-in `zapa.echo` handler (`ZAPA_INBOUND_TASK=zapa.echo`), which replies
through `send_message`; the simulator accepts the reply and posts its own `message.sent`
webhook back, as zapw does. Each reply carries the event's unique marker in its text.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from bench.bridge import SESSION, SESSION_PHONE, start_simulator, wait_for_sends
from bench.environment import OURS_APP, OURS_WSGI, BenchEnv
from bench.processes import BenchError, run_module, wait_for
from bench.results import Row, Section, ceiling_row, info_row, percentile
from bench.sizes import Sizes
from bench.usage import UsageMeter, children_cpu, commands_table, cpu_table, redis_server_cpu
from zapa_bridge.simulator import SentMessage, Simulator
from zapa_bridge.store import keys

TITLE = "Loop latency"
TARGET_P50_MS = 15.0
TARGET_P99_MS = 60.0
ECHO_PREFIX = "echo: bench "  # zapa.echo answers "echo: <text>"; the text is "bench <marker>"
INBOUND = {"ZAPA_INBOUND_TASK": "zapa.echo"}
LOOP_QUEUES = ("zapa.events", "zapa.inbound", "zapa.send.default")
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


def run(env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    env.flush()
    web, port = env.start_web(OURS_WSGI, "loop", **INBOUND)
    workers = env.start_workers(OURS_APP, "loop", **INBOUND)
    simulator = start_simulator(env.simulator_port, webhook_url=env.webhook_url(port))
    relief: Pass | None = None
    try:
        wait_for(lambda: _registry_says_connected(env), timeout=20,
                 what="the session.connected webhook handled")
        meter = UsageMeter(env.redis(), {
            "gunicorn (master + workers)": children_cpu([web]),
            "worker processes": children_cpu(workers),
            "redis-server": redis_server_cpu(env.redis()),
        }).start()
        main = load_pass(env, sizes, port, simulator, sizes.loop_rate, sizes.loop_seconds)
        usage = meter.stop().per_item(main.posted)
        if main.overloaded and drained(env, simulator):
            relief = load_pass(env, sizes, port, simulator,
                               max(1.0, round(main.replies_per_second / 2)),
                               sizes.loop_seconds / 2)
    finally:
        simulator.stop()
        env.children.stop(*workers, web)
    section = Section(TITLE, method=method(env, sizes), rows=rows(main, relief))
    section.details += [
        f"Events measured at {main.rate:g}/s: {main.measured:,}; replies matched: "
        f"{len(main.latencies):,}; slowest: {max(main.latencies, default=0):.1f} ms.", "",
        cpu_table(usage, None, "event (web, handler, echo, reply, send)"), "",
        commands_table(usage, None, "event"),
    ]
    return section


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


def rows(main: Pass, relief: Pass | None) -> list[Row]:
    result = [
        ceiling_row(TITLE, f"POST to reply at {main.rate:g}/s, p50", main.p(50), None, "ms",
                    TARGET_P50_MS),
        ceiling_row(TITLE, f"POST to reply at {main.rate:g}/s, p99", main.p(99), None, "ms",
                    TARGET_P99_MS),
        info_row(TITLE, f"replies within the time allowed at {main.rate:g}/s",
                 100 * len(main.latencies) / main.measured if main.measured else None, None,
                 "%"),
    ]
    if main.overloaded:
        result.append(info_row(TITLE, "events/s the loop got through (overloaded)",
                               main.replies_per_second, None, "/s"))
    if relief is not None:
        result += [
            info_row(TITLE, f"POST to reply at {relief.rate:g}/s (half that), p50",
                     relief.p(50), None, "ms"),
            info_row(TITLE, f"POST to reply at {relief.rate:g}/s (half that), p99",
                     relief.p(99), None, "ms"),
        ]
    return result


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
        "hold the replies back by design. If the loop cannot keep up with that rate on this "
        "machine, the backlog is left to drain and a second, shorter pass runs at half the "
        "rate it got through, to show the latency of the path when it is not queueing.",
        f"The path measured: gunicorn (as above), then {env.workers} worker processes "
        "(Procfile) with `ZAPA_INBOUND_TASK=zapa.echo`: `zapa.handle_event` records the "
        "message and sends `zapa.echo` on `zapa.inbound`, which calls `send_message.delay` "
        "(`zapa.send.default`), whose task posts the reply to the simulator: three Celery "
        "hops. The simulator posts its `message.sent` webhook back meanwhile, as zapw does.",
        "Latency: from the moment the load generator wrote the POST to the moment the "
        "simulator accepted the reply (`SentMessage.at`), both `time.time()` on this one "
        "machine.",
    ]
