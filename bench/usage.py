"""What a measured stretch cost, process by process: CPU seconds (from /proc) and the Redis
commands run. On a machine with few cores every process competes for the same CPUs, so CPU
per message says where a throughput ratio comes from."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.processes import (
    CLOCK_TICKS,
    Child,
    direct_children,
    tree_cpu_seconds,
)
from bench.results import fmt, markdown_table

CpuReader = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: dict[str, float]
    redis_commands: Counter[str]

    def per_item(self, items: int) -> Usage:
        """Per message (or request): CPU in milliseconds, commands as counts."""
        if items <= 0:
            return Usage({}, Counter())
        return Usage({role: 1000 * seconds / items for role, seconds in self.cpu_seconds.items()},
                     Counter({name: calls / items for name, calls in self.redis_commands.items()}))


def pooled(usages: Sequence[Usage]) -> Usage:
    """Several stretches' usage added up (divide by all their items with `per_item`)."""
    cpu: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    for usage in usages:
        cpu.update(usage.cpu_seconds)
        commands.update(usage.redis_commands)
    return Usage(dict(cpu), commands)


class UsageMeter:
    """`start`, then `stop` after the stretch; Redis's command counters are reset at start."""

    def __init__(self, client: redis.Redis, readers: Mapping[str, CpuReader]) -> None:
        self.client = client
        self.readers = dict(readers)
        self._before: dict[str, float] = {}

    def start(self) -> UsageMeter:
        self.client.config_resetstat()
        self._before = {role: read() for role, read in self.readers.items()}
        return self

    def stop(self) -> Usage:
        cpu = {role: read() - self._before[role] for role, read in self.readers.items()}
        return Usage(cpu, redis_commands(self.client))


def redis_commands(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_").upper(): int(value["calls"])
                    for name, value in stats.items()})


def children_cpu(children: Sequence[Child]) -> CpuReader:
    return lambda: sum(child.cpu_seconds() for child in children)


def redis_server_cpu(client: redis.Redis) -> CpuReader:
    """The Redis server's CPU seconds, user and system, as its `INFO cpu` reports them (to
    the microsecond; the same figure for a Redis on another machine)."""
    def read() -> float:
        cpu = client.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return read


def this_process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def cpu_table(ours: Usage, baseline: Usage | None, unit: str) -> str:
    """CPU milliseconds per `unit`, by process, ours next to the baseline's."""
    roles = list(ours.cpu_seconds) + [role for role in (baseline.cpu_seconds if baseline else {})
                                      if role not in ours.cpu_seconds]
    rows = []
    for role in [*roles, "total"]:
        ours_ms = _cpu(ours, role)
        base_ms = _cpu(baseline, role) if baseline else None
        rows.append((role, fmt(ours_ms, "ms"), fmt(base_ms, "ms")))
    return markdown_table((f"CPU per {unit}", "ours", "baseline"), rows)


def _cpu(usage: Usage, role: str) -> float | None:
    if role == "total":
        return sum(usage.cpu_seconds.values())
    return usage.cpu_seconds.get(role)


def commands_table(ours: Usage, baseline: Usage | None, unit: str, top: int = 10) -> str:
    """Redis commands per `unit` (commands that Lua scripts run are counted as well)."""
    names = [name for name, _ in ours.redis_commands.most_common(top)]
    rows = [(name, f"{ours.redis_commands[name]:.2f}",
             f"{baseline.redis_commands[name]:.2f}" if baseline else "-") for name in names]
    rows.append(("all commands", f"{sum(ours.redis_commands.values()):.2f}",
                 f"{sum(baseline.redis_commands.values()):.2f}" if baseline else "-"))
    return markdown_table((f"Redis commands per {unit}", "ours", "baseline"), rows)


class MachineLoad:
    """How busy the machine was with other processes while a benchmark ran: shared machines
    run other work, and the ratios hold only if it stayed small."""

    def __init__(self) -> None:
        self._start = (machine_busy_seconds(), our_cpu_seconds(), time.monotonic())

    def others_cores(self) -> float:
        """Cores used on average by processes that are not this run's, since the start."""
        busy, ours, started = self._start
        elapsed = time.monotonic() - started
        if elapsed <= 0:
            return 0.0
        others = (machine_busy_seconds() - busy) - (our_cpu_seconds() - ours)
        return max(0.0, others / elapsed)


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def our_cpu_seconds() -> float:
    """CPU seconds of this process, its live descendants and the children it reaped."""
    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    return own + sum(tree_cpu_seconds(child, with_reaped=True)
                     for child in direct_children(os.getpid()))
