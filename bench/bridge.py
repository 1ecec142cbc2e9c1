"""The zapw side of every benchmark: the project's faithful simulator, in this process (the
runner only waits while it serves), with one session connected from the start."""

from __future__ import annotations

import time

from bench.processes import BenchError, wait_for
from zapa_bridge.simulator import SentMessage, Simulator, SimulatorConfig

SESSION = "bench"
SESSION_PHONE = "5511900000001"


def start_simulator(port: int, webhook_url: str | None = None) -> Simulator:
    """A zapw simulator on `port`; it posts its webhooks (if a URL is given) as zapw does."""
    simulator = Simulator(SimulatorConfig(
        port=port, webhook_url=webhook_url, sessions=(SESSION,),
        phones={SESSION: SESSION_PHONE}, connect_delay=0.0, webhook_retry_delay=0.2))
    simulator.start()
    try:
        wait_for(lambda: (simulator.session(SESSION) or {}).get("status") == "connected",
                 timeout=10, what="the simulated session connected")
    except BenchError:
        simulator.stop()
        raise
    return simulator


def wait_for_sends(simulator: Simulator, count: int, *, stall_after: float,
                   limit: float) -> list[SentMessage]:
    """The accepted sends once there are `count`, or what there is when none came for
    `stall_after` seconds or `limit` seconds passed (the caller reports the shortfall)."""
    started = time.monotonic()
    last_count, last_progress = -1, started
    while True:
        done = len(simulator.sends())
        now = time.monotonic()
        if done != last_count:
            last_count, last_progress = done, now
        if done >= count or now - last_progress > stall_after or now - started > limit:
            return simulator.sends()
        time.sleep(0.2)
