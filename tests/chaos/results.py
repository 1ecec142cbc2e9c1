"""The one-line result of each chaos scenario, its JSON record, and the table of
docs/reliability.md built from those records.

Each test prints its line and, when ZAPA_CHAOS_RESULTS names a file, appends its record
there (xdist workers append to the same file). `python -m tests.chaos.results RESULTS DOC`
rewrites the results part of DOC from them; `scripts/reliability` runs both steps.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from tests.chaos.ledger import Tally

RESULTS_ENV = "ZAPA_CHAOS_RESULTS"
BEGIN = "<!-- chaos-results:begin (scripts/reliability rewrites this part) -->"
END = "<!-- chaos-results:end -->"
# The order of the table, which is the order of the list.
SCENARIOS = ("worker-sigkill", "worker-sigkill-defaults", "worker-sigkill-survivor",
             "bridge-refusing", "bridge-500s", "session-drop",
             "bridge-restart", "redis-restart", "redis-failover", "web-redis-outage",
             "rate-limit", "idempotency-race")


@dataclass
class Verdict:
    """The guarantees a scenario checks; failures are reported before they are asserted, so
    a failing run still leaves its figures in the table."""

    failures: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def expect(self, holds: bool, guarantee: str) -> None:
        self.checked.append(guarantee)
        if not holds:
            self.failures.append(guarantee)

    @property
    def passed(self) -> bool:
        return not self.failures

    def enforce(self) -> None:
        assert self.failures == [], f"guarantees broken: {'; '.join(self.failures)}"


@dataclass(frozen=True, slots=True)
class ChaosResult:
    scenario: str
    messages: int
    sent: int
    lost: int
    duplicates: int
    order_violations: int | None  # None where order is not promised
    seconds: float
    passed: bool
    guarantees: tuple[str, ...]
    failed: tuple[str, ...] = ()
    notes: str = ""

    def line(self) -> str:
        order = "n/a" if self.order_violations is None else self.order_violations
        outcome = "ok" if self.passed else f"FAILED ({'; '.join(self.failed)})"
        notes = f" [{self.notes}]" if self.notes else ""
        return (f"chaos {self.scenario}: messages={self.messages} sent={self.sent} "
                f"lost={self.lost} duplicates={self.duplicates} order_violations={order} "
                f"in {self.seconds:.1f} s: {outcome}{notes}")


def report(request: pytest.FixtureRequest, scenario: str, tally: Tally, *, seconds: float,
           verdict: Verdict, notes: str = "", ordered: bool = True) -> ChaosResult:
    """Print the scenario's line, keep it on the test's report, and append its record to
    $ZAPA_CHAOS_RESULTS when set. `ordered=False` where no order is promised."""
    result = ChaosResult(
        scenario, tally.messages, tally.sent, len(tally.lost), tally.duplicates,
        tally.order_violations if ordered else None, round(seconds, 1), verdict.passed,
        tuple(verdict.checked), tuple(verdict.failures), notes)
    print(result.line())
    request.node.user_properties.append(("chaos", result.line()))
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            fcntl.flock(out, fcntl.LOCK_EX)  # xdist workers share the file
            out.write(json.dumps(asdict(result)) + "\n")
    return result


# -- the table of docs/reliability.md ------------------------------------------------------


def load(path: Path) -> list[ChaosResult]:
    """The records in `path`; a scenario run twice keeps its last record."""
    latest: dict[str, ChaosResult] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            data = json.loads(raw)
            data["guarantees"] = tuple(data["guarantees"])
            data["failed"] = tuple(data.get("failed", ()))
            latest[data["scenario"]] = ChaosResult(**data)
    rank = {name: n for n, name in enumerate(SCENARIOS)}
    return sorted(latest.values(), key=lambda r: (rank.get(r.scenario, len(rank)), r.scenario))


def machine() -> str:
    try:
        redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                       text=True, timeout=5).stdout.split()[2].removeprefix("v=")
    except (OSError, IndexError, subprocess.TimeoutExpired):
        redis_version = "unknown"
    return (f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, Redis {redis_version}")


def table(results: list[ChaosResult], wall_seconds: float | None) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    took = f"; the chaos suite took {wall_seconds:.0f} s" if wall_seconds is not None else ""
    lines = [
        BEGIN,
        f"Measured {today} on {machine()}{took}.",
        "",
        "| scenario | messages | sent | lost | duplicates | order violations | seconds "
        "| result | also seen |",
        "|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in results:
        order = "n/a" if r.order_violations is None else str(r.order_violations)
        outcome = "pass" if r.passed else "**FAIL**: " + "; ".join(r.failed)
        lines.append(f"| `{r.scenario}` | {r.messages} | {r.sent} | {r.lost} | "
                     f"{r.duplicates} | {order} | {r.seconds:.1f} | {outcome} | {r.notes} |")
    missing = [name for name in SCENARIOS if name not in {r.scenario for r in results}]
    if missing:
        lines += ["", f"Not run (or stopped before reporting): {', '.join(missing)}."]
    lines.append(END)
    return "\n".join(lines)


def rewrite(doc: Path, results: list[ChaosResult], wall_seconds: float | None) -> None:
    text = doc.read_text(encoding="utf-8")
    before, found, rest = text.partition(BEGIN)
    _, found_end, after = rest.partition(END)
    if not (found and found_end):
        raise SystemExit(f"{doc}: the markers {BEGIN!r} and {END!r} are missing")
    doc.write_text(before + table(results, wall_seconds) + after, encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m tests.chaos.results RESULTS.jsonl DOC.md [WALL_SECONDS]",
              file=sys.stderr)
        return 2
    results = load(Path(argv[0]))
    rewrite(Path(argv[1]), results, float(argv[2]) if len(argv) == 3 else None)
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
