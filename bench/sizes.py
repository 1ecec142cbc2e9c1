"""How big each benchmark is: the issue's sizes, and a smoke size that only proves the
benchmarks still run (CI), in well under a minute."""

from __future__ import annotations

from dataclasses import dataclass, replace

ONE_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Sizes:
    name: str
    # Ours and the baseline run alternately this many times each (bench.pairs).
    pairs: int = 3
    outbound_messages: int = 20_000
    # Messages of one conversation go one at a time, in order: spread them so that order
    # does not serialise the run.
    outbound_recipients: int = 1_000
    outbound_profile_messages: int = 2_000
    outbound_solo_messages: int = 5_000  # each to a recipient of its own
    webhook_seconds: float = 20.0
    webhook_connections: int = 8
    warmup_seconds: float = 1.0
    profile_seconds: float = 8.0
    loop_rate: float = 200.0
    # Offered above the target of 200/s, so that what the loop gets through is its capacity.
    loop_capacity_rate: float = 300.0
    loop_seconds: float = 20.0
    loop_senders: int = 1_000
    scale_checkpoints: tuple[int, ...] = (1_000, 10_000, 100_000)
    # Each checkpoint's time per message is measured over this many enqueues at that depth.
    scale_window: int = 1_000
    # The baseline's checkpoints stop here: its cost per message is not in question.
    scale_baseline_max: int = 10_000
    scale_producers: int = 2
    durability_calls: int = 2_000


FULL = Sizes(name="full")

SMOKE = Sizes(
    name="smoke", pairs=2, outbound_messages=300, outbound_recipients=50,
    outbound_profile_messages=200, outbound_solo_messages=100,
    webhook_seconds=2.0, webhook_connections=4, warmup_seconds=0.3, profile_seconds=1.0,
    loop_rate=20.0, loop_capacity_rate=30.0, loop_seconds=2.0, loop_senders=50,
    scale_checkpoints=(100, 300),
    scale_window=100, scale_baseline_max=300, durability_calls=100,
)


def with_full_scale(sizes: Sizes) -> Sizes:
    """The issue's whole scale run, up to a million waiting messages (several minutes)."""
    return replace(sizes, scale_checkpoints=(*sizes.scale_checkpoints, ONE_MILLION))
