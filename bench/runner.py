"""Run the benchmarks, print the table, rewrite docs/benchmarks.md (`scripts/bench --help`)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType

from bench import durability, loop, outbound, scale, slow_clients, webhook
from bench.environment import BenchEnv, bench_env
from bench.machine import facts
from bench.processes import ROOT, BenchError
from bench.report import render
from bench.results import Row, Section, render_text
from bench.sizes import FULL, SMOKE, Sizes, with_full_scale
from bench.usage import MachineLoad

Benchmark = Callable[..., Section]
BENCHMARKS: dict[str, Benchmark] = {
    "outbound": outbound.run,
    "webhook": webhook.run,
    "loop": loop.run,
    "scale": scale.run,
    "slow_clients": slow_clients.run,
    "durability": durability.run,
}
DOC = ROOT / "docs" / "benchmarks.md"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="Benchmarks of zapa-bridge against bare Celery and "
        "Flask baselines; prints the table and rewrites docs/benchmarks.md.")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and no profiles, to prove the benchmarks run; docs "
                             "are not written unless --doc is given")
    parser.add_argument("--full-scale", action="store_true",
                        help="scale up to 1,000,000 waiting messages (several minutes more)")
    parser.add_argument("--only", type=lambda text: text.split(","), default=list(BENCHMARKS),
                        help=f"comma-separated, of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--pairs", type=int,
                        help="times ours and the baseline run alternately, A B A B; each "
                             "ratio is the median of the pairs' (default 3, 2 with --smoke)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes, ours and the baseline's alike (default 2)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument("--doc", type=Path, help=f"write the report here (default: {DOC} "
                                                 "when every benchmark ran at full size, "
                                                 "else nowhere)")
    parser.add_argument("--logs", type=Path, default=ROOT / ".zapa" / "bench",
                        help="process logs and raw profiles go to a new folder in here "
                             "(default .zapa/bench)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    if args.pairs is not None and args.pairs < 1:
        parser.error("--pairs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    if args.full_scale:
        sizes = with_full_scale(sizes)
    if args.pairs is not None:
        sizes = replace(sizes, pairs=args.pairs)
    # Only a run of everything at full size replaces the report; anything less prints.
    complete = not args.smoke and set(args.only) == set(BENCHMARKS)
    doc = args.doc or (DOC if complete else None)
    # SIGTERM unwinds like Ctrl-C, so every process started is stopped on the way out.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    started = time.monotonic()
    log_dir = args.logs / time.strftime("%Y%m%d-%H%M%S")
    try:
        with bench_env(log_dir, workers=args.workers) as env:
            machine = facts(str(env.redis().info("server")["redis_version"]))
            profile = not (args.no_profile or args.smoke)
            sections = [run_one(name, env, sizes, profile=profile) for name in args.only]
    except KeyboardInterrupt:
        print("interrupted: every process the run started is stopped", file=sys.stderr)
        return 130
    print(render_text(row for section in sections for row in section.rows))
    print(f"\n{sizes.name} run, {time.monotonic() - started:.0f} s; logs in {log_dir}")
    if doc is not None:
        doc.write_text(render(machine, sections, command(argv)))
        print(f"report written to {doc}")
    return 1 if any(section.title.endswith("(failed)") for section in sections) else 0


def run_one(name: str, env: BenchEnv, sizes: Sizes, *, profile: bool) -> Section:
    """One benchmark; one that cannot run is reported as failed and the others still run."""
    print(f"== {name} ({sizes.name})", flush=True)
    load, started = MachineLoad(), time.monotonic()
    try:
        section = BENCHMARKS[name](env, sizes, profile=profile)
    except BenchError as exc:
        print(f"   failed: {exc}", file=sys.stderr)
        section = failed(name, str(exc))
    except Exception as exc:  # a bug or a broken stack: the other benchmarks still run
        traceback.print_exc()
        section = failed(name, f"{type(exc).__name__}: {exc}")
    seconds = time.monotonic() - started
    section.method.append(f"Took {seconds:.0f} s; other processes on this machine used "
                          f"{load.others_cores():.2f} cores on average meanwhile.")
    print(f"   {seconds:.0f} s", flush=True)
    return section


def failed(name: str, reason: str) -> Section:
    return Section(f"{name} (failed)", rows=[Row(name, f"failed: {reason}"[:120], None)])


def command(argv: Sequence[str] | None) -> str:
    given = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["scripts/bench", *given])


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
