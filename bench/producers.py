"""Producer processes (`bench.enqueue`) started from the runner: several at once to fill a
backlog, or one alone to time the enqueue path."""

from __future__ import annotations

import json

from bench.environment import BenchEnv
from bench.processes import run_parallel

TIMED_CHUNKS = 4


def enqueue_together(env: BenchEnv, kind: str, first: int, count: int, producers: int,
                     recipients: int = 0) -> float:
    """Enqueue messages `first` .. `first + count` from `producers` processes at once;
    returns their joint rate (enqueues/s)."""
    share = -(-count // producers)
    commands = [["bench.enqueue", "--kind", kind, "--first", str(first + index * share),
                 "--count", str(min(share, count - index * share)),
                 "--recipients", str(recipients)]
                for index in range(producers) if count - index * share > 0]
    outputs = run_parallel(commands, env.child_env(), timeout=60 + count / 100)
    results = [json.loads(output) for output in outputs]
    return sum(r["timed"] for r in results) / max(r["seconds"] for r in results)


def seconds_per_enqueue(env: BenchEnv, kind: str, first: int, count: int) -> float:
    """One producer alone: seconds per enqueue over `count` messages from `first` on (the
    fastest of a few runs of calls, so that a burst of other work on the machine does not
    pass for a cost of ours)."""
    output = run_parallel([["bench.enqueue", "--kind", kind, "--first", str(first),
                            "--count", str(count), "--chunks", str(TIMED_CHUNKS)]],
                          env.child_env(), timeout=60 + count / 100)
    return float(json.loads(output[0])["fastest_per_call"])
