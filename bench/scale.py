"""Scale: messages queued with no worker running, from an empty Redis up to the largest
checkpoint. At each checkpoint: the Redis memory per waiting message, and the time one
producer takes per enqueue at that depth, so a cost that grows with the backlog shows.

Between checkpoints the backlog is filled by several producer processes at once (still
one `send_message.delay` per message: our API has no batch call), then a window of
enqueues by a single producer is timed. Every message has a recipient of its own, so each
is its own conversation and every one waits in the Celery queue itself (the worst case for
memory: messages behind an earlier one of their conversation wait in its lane instead).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import redis

from bench import enqueue as producer
from bench.baseline_app import QUEUE as BASELINE_QUEUE
from bench.environment import BenchEnv
from bench.pairs import Pairs, alternate, median
from bench.producers import enqueue_together, seconds_per_enqueue
from bench.results import Row, Section, ceiling_row, fmt, info_row, markdown_table
from bench.sizes import Sizes
from zapa_bridge.store import keys

TITLE = "Scale"
TARGET_BYTES = 2048
# Redis keeps a hash as a compact listpack while every value is at most 64 bytes (its
# default). A waiting status record keeps every value within that (its message has a key of
# its own), so raising the limit should change nothing: the row shows a field outgrowing it.
LISTPACK = {"hash-max-listpack-value": "1024"}
FLAT_WITHIN = 1.5  # the slowest checkpoint's time per message, at most this x the fastest
OURS_QUEUE = "zapa.send.default"
SHARED_KEYS = (OURS_QUEUE, BASELINE_QUEUE, keys.PENDING, keys.DUE, keys.MESSAGES_RECENT)
KEY_SAMPLES = 2000
_ID_PARTS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d{4,}")


@dataclass
class Checkpoint:
    depth: int
    seconds_per_message: float
    bytes_per_message: float


@dataclass
class Fill:
    kind: str
    checkpoints: list[Checkpoint] = field(default_factory=list)
    parallel_rate: float | None = None  # enqueues/s of the fill producers together
    breakdown: list[tuple[str, str, str]] = field(default_factory=list)

    def at(self, depth: int) -> Checkpoint | None:
        return next((c for c in self.checkpoints if c.depth == depth), None)

    @property
    def flatness(self) -> float:
        times = [c.seconds_per_message for c in self.checkpoints]
        return max(times) / min(times)


def run(env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    small = [depth for depth in sizes.scale_checkpoints if depth <= sizes.scale_baseline_max]
    # Ours fills to the deepest checkpoint once, in the first pair; the pairs after it
    # repeat the smaller checkpoints only, as the baseline does every time.
    fills = alternate(sizes.pairs, lambda _: fill(env, "baseline", small, sizes),
                      lambda pair: fill(env, "ours", sizes.scale_checkpoints if pair == 1
                                        else small, sizes))
    # An operator's setting, not ours: status records whose fields fit in a listpack.
    listpack = fill(env, "ours", small[-1:], sizes, redis_config=LISTPACK)
    section = Section(TITLE, rows=rows(fills, small), method=method(sizes),
                      details=details(fills.ours[0], fills.baseline[0]))
    base_bytes = fills.figure(lambda run: bytes_at(run, small[-1]))
    section.rows.append(info_row(
        TITLE, f"memory per waiting message at {small[-1]:,}, Redis with "
        f"hash-max-listpack-value {LISTPACK['hash-max-listpack-value']} (once)",
        listpack.checkpoints[-1].bytes_per_message, base_bytes.baseline, "B"))
    return section


def bytes_at(run: Fill, depth: int) -> float | None:
    point = run.at(depth)
    return point.bytes_per_message if point else None


def microseconds_at(run: Fill, depth: int) -> float | None:
    point = run.at(depth)
    return point.seconds_per_message * 1e6 if point else None


def single_rate(run: Fill, depths: Sequence[int]) -> float | None:
    """One producer's enqueues/s, the median over the windows at `depths`."""
    times = [point.seconds_per_message for point in run.checkpoints if point.depth in depths]
    return 1 / statistics.median(times) if times else None


def fill(env: BenchEnv, kind: str, checkpoints: Sequence[int], sizes: Sizes, *,
         redis_config: Mapping[str, str] | None = None) -> Fill:
    env.flush()
    client = env.redis()
    defaults = {name: client.config_get(name)[name] for name in redis_config or {}}
    for name, value in (redis_config or {}).items():
        client.config_set(name, value)
    try:
        return _fill(env, client, kind, checkpoints, sizes)
    finally:
        for name, value in defaults.items():
            client.config_set(name, value)


def _fill(env: BenchEnv, client: redis.Redis, kind: str, checkpoints: Sequence[int],
          sizes: Sizes) -> Fill:
    empty = used_memory(client)
    result, depth, fill_rates = Fill(kind), 0, []
    for checkpoint in checkpoints:
        window = min(sizes.scale_window, checkpoint - depth)
        if checkpoint - window > depth:
            fill_rates.append(enqueue_together(env, kind, depth, checkpoint - window - depth,
                                               sizes.scale_producers))
        timed = seconds_per_enqueue(env, kind, checkpoint - window, window)
        depth = checkpoint
        result.checkpoints.append(Checkpoint(
            depth, timed, (used_memory(client) - empty) / depth))
    if fill_rates:
        result.parallel_rate = statistics.median(fill_rates)
    result.breakdown = breakdown_rows(memory_breakdown(client),
                                      result.checkpoints[-1].bytes_per_message, depth)
    env.flush()
    return result


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def memory_breakdown(client: redis.Redis) -> list[tuple[str, float]]:
    """Bytes by kind of key: the shared structures measured whole, the per-message keys
    estimated from a random sample (MEMORY USAGE)."""
    parts = []
    for key in SHARED_KEYS:
        if client.exists(key):
            parts.append((f"`{key}` ({client.type(key)})", float(client.memory_usage(key) or 0)))
    families: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for _ in range(KEY_SAMPLES):
        key = client.randomkey()
        if key is None or key in SHARED_KEYS:
            continue
        family = _ID_PARTS.sub("*", key)
        families[family] += 1
        sizes[family] += client.memory_usage(key) or 0
    sampled, keys = sum(families.values()), client.dbsize()
    for family, count in families.most_common(8):
        share = keys * count / sampled
        parts.append((f"`{family}` (~{share:,.0f} keys)", share * sizes[family] / count))
    return parts


def breakdown_rows(parts: list[tuple[str, float]], bytes_per_message: float,
                   messages: int) -> list[tuple[str, str, str]]:
    """The parts per message, plus what MEMORY USAGE does not see: the keyspace's own tables
    (an entry per key, another per key with a TTL) and the allocator's slack."""
    total = bytes_per_message * messages
    rest = total - sum(size for _, size in parts)
    parts = [*parts, ("the rest: keyspace tables, TTLs, allocator", rest),
             ("**total** (`used_memory` less an empty Redis's)", total)]
    return [(label, fmt(size / 1e6, "MB"), fmt(size / messages, "B")) for label, size in parts]


def rows(fills: Pairs[Fill], small: Sequence[int]) -> list[Row]:
    whole = fills.ours[0]
    deepest = whole.checkpoints[-1].depth
    memory = fills.figure(lambda run: bytes_at(run, deepest))
    result = [ceiling_row(TITLE, f"Redis memory per waiting message at {deepest:,}",
                          memory.ours, memory.baseline, "B", TARGET_BYTES,
                          ratios=memory.ratios)]
    if deepest not in small:
        common = fills.figure(lambda run: bytes_at(run, small[-1]))
        result.append(info_row(TITLE, f"Redis memory per waiting message at {small[-1]:,}",
                               common.ours, common.baseline, "B", ratios=common.ratios))
    rate = fills.figure(lambda run: single_rate(run, small))
    result.append(info_row(TITLE, f"enqueue calls/s (1 producer, median up to {small[-1]:,})",
                           rate.ours, rate.baseline, "/s", ratios=rate.ratios))
    together = fills.figure(lambda run: run.parallel_rate)
    if together.ours:
        result.append(info_row(TITLE, "enqueue calls/s (producers together)", together.ours,
                               together.baseline, "/s", ratios=together.ratios))
    for point in whole.checkpoints:
        timed = fills.figure(lambda run, depth=point.depth: microseconds_at(run, depth))
        result.append(info_row(TITLE, f"time per enqueue at {point.depth:,} waiting",
                               timed.ours, timed.baseline, "us", ratios=timed.ratios))
    first = whole.checkpoints[0].depth
    base_flat = median([run.flatness for run in fills.baseline])
    result.append(Row(TITLE, f"time per enqueue, slowest / fastest, {first:,} to {deepest:,} "
                             "(ours once)", whole.flatness, base_flat, "x",
                      f"flat: <= {FLAT_WITHIN:g} x", whole.flatness <= FLAT_WITHIN))
    return result


def method(sizes: Sizes) -> list[str]:
    depths = ", ".join(f"{depth:,}" for depth in sizes.scale_checkpoints)
    return [
        f"No worker runs. From an empty Redis the backlog grows to {depths} messages. "
        f"Before each checkpoint, {sizes.scale_producers} producer processes fill the "
        "backlog together (one `send_message.delay` per message: the API has no batch "
        f"call); then one producer enqueues the last {sizes.scale_window:,} messages up to "
        "the checkpoint, timed, and Redis's `used_memory` (less an empty Redis's) is divided "
        "by the messages waiting.",
        f"Messages: {producer.TEXT_CHARS}-character texts, each to a recipient of its own, so "
        "every message is its own conversation and waits in `zapa.send.default` itself.",
        f"Baseline, in the same run: a bare `apply_async` of `bench.baseline_app`'s task with "
        f"the same arguments, up to {sizes.scale_baseline_max:,}.",
        "Ours once more with Redis's `hash-max-listpack-value` raised from 64 to "
        f"{LISTPACK['hash-max-listpack-value']} bytes (an informative row): a waiting status "
        "record keeps every value within 64 bytes (the message's JSON is a key of its own), "
        "so Redis stores it as a compact listpack either way and the two rows should agree; "
        "a field grown past 64 bytes would make it a hash table by default, and show here.",
        f"In pairs, A B A B, {sizes.pairs} times, each from an empty Redis: the baseline up "
        f"to {sizes.scale_baseline_max:,}, then ours. Ours goes to the deepest checkpoint "
        "in the first pair only, and to the baseline's checkpoints in the others: a fill to "
        "the deepest takes minutes, and the figures in question there (memory, and whether "
        "time per enqueue stays flat) move little from run to run. So the rows at the "
        "smaller checkpoints are medians of pairs with a range; those deeper, and the "
        "flatness, are ours' one fill.",
    ]


def details(ours: Fill, baseline: Fill) -> list[str]:
    table = [_checkpoint_cells(point, baseline.at(point.depth)) for point in ours.checkpoints]
    lines = [markdown_table(("waiting", "memory/msg ours", "baseline", "enqueue ours",
                             "baseline"), table), ""]
    if ours.breakdown:
        depth = ours.checkpoints[-1].depth
        lines += [f"Where a waiting message's bytes are (ours, at {depth:,}):", "",
                  markdown_table(("key", "memory", "per message"), ours.breakdown)]
    return lines


def _checkpoint_cells(ours: Checkpoint, baseline: Checkpoint | None) -> tuple[str, ...]:
    return (f"{ours.depth:,}", fmt(ours.bytes_per_message, "B"),
            fmt(baseline.bytes_per_message if baseline else None, "B"),
            fmt(ours.seconds_per_message * 1e6, "us"),
            fmt(baseline.seconds_per_message * 1e6 if baseline else None, "us"))
