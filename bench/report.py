"""docs/benchmarks.md, written anew by every full run: machine facts, the table, how each
benchmark measures, the profiles, and the targets missed with what the run saw."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.profiling import TOP, ProfileSummary
from bench.results import Row, Section, markdown_table, render_markdown

ANALYSIS = Path(__file__).with_name("analysis.md")


def render(facts: dict[str, str], sections: Sequence[Section], command: str) -> str:
    rows = [row for section in sections for row in section.rows]
    parts = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {facts['date']}; do not edit by hand (the prose comes "
        "from `bench/`). Each benchmark runs ours and a bare baseline in the same run on the "
        "same machine, so read the ratios: absolute numbers on a shared machine are noise. "
        "Where a row has a range, ours and the baseline ran alternately, A B A B, in as "
        "many pairs (`--pairs`, default 3), and its ratio is the median of the pairs' ratios: "
        "one pair alone moved by 0.2 from day to day. "
        "Benchmarks are not tests: they assert nothing about time.",
        "",
        "Run them with `scripts/bench` (all, as below), `scripts/bench --smoke` (tiny sizes, "
        "to prove they still run; prints only), `scripts/bench --full-scale` (adds the "
        "scale step at 1,000,000 waiting messages), `scripts/bench --only webhook,loop` "
        "(some; prints only).",
        "",
        "## Machine",
        "",
        markdown_table(("", ""), list(facts.items())),
        "",
        "## Results",
        "",
        render_markdown(rows),
        "",
        "Ratio is ours / baseline: for a row measured in pairs, the median of the pairs' "
        "ratios, with ours and the baseline each side's median. Range (pairs) is the lowest "
        "and the highest pair ratio (the spread; with three pairs an interquartile range "
        "would say no more), then how many pairs; a \"spread\" row gives that range as one "
        "number, the highest pair ratio less the lowest. The target column is the issue's (#7; the "
        "slow-client rows: #14), judged on the median.",
        "",
    ]
    for section in sections:
        parts += render_section(section)
    parts += render_missed(rows)
    if ANALYSIS.exists():
        parts += ["", ANALYSIS.read_text().rstrip(), ""]
    return "\n".join(parts).rstrip() + "\n"


def render_section(section: Section) -> list[str]:
    lines = [f"## {section.title}", ""]
    lines += [f"- {item}" for item in section.method]
    if section.details:
        lines += ["", *section.details]
    for profile in section.profiles:
        lines += ["", *render_profile(profile)]
    return [*lines, ""]


def render_profile(profile: ProfileSummary) -> list[str]:
    lines = [f"### Profile: {profile.title}", ""]
    if profile.error:
        return [*lines, f"No profile: {profile.error}"]
    lines += [
        f"py-spy, {profile.samples:,} samples of the threads holding the interpreter lock "
        "(Python's own CPU time; waiting on sockets is not counted).",
        "",
        markdown_table(("where the time is (innermost frame)", "share"),
                       [(name, profile.share(count))
                        for name, count in profile.by_component.most_common()]),
        "",
        markdown_table(("our function (its library calls included)", "share"),
                       [(f"`{name}`", profile.share(count))
                        for name, count in profile.ours.most_common(TOP)]),
        "",
        markdown_table(("top frames by self time", "share"),
                       [(f"`{name}`", profile.share(count))
                        for name, count in profile.self_time.most_common(TOP)]),
    ]
    return lines


def render_missed(rows: Sequence[Row]) -> list[str]:
    missed = [row for row in rows if row.met is False]
    lines = ["## Targets missed in this run", ""]
    if not missed:
        return [*lines, "None.", ""]
    for row in missed:
        cells = row.cells()
        pairs = f", pairs {cells[5]}" if cells[5] else ""
        lines.append(f"- {row.benchmark}, {row.metric}: {cells[2]} (baseline {cells[3]}, "
                     f"ratio {cells[4] or '-'}{pairs}), target {row.target}.")
    lines += ["", "The CPU and Redis command tables and the profiles above show where the "
              "time goes; the analysis below says what would close each gap."]
    return lines
