"""What a benchmark reports: table rows (ours, baseline, ratio and its range over the pairs,
target, met?) and the notes and profiles that explain them, plus the two renderings of the
table (terminal, markdown)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from bench.pairs import Figure, median, spread, width
from bench.profiling import ProfileSummary

HEADERS = ("benchmark", "metric", "ours", "baseline", "ratio", "range (pairs)", "target",
           "met?")


@dataclass(frozen=True, slots=True)
class Row:
    """One measured figure; `ratio` is always ours / baseline: the median of the pairs'
    ratios when the figure was measured in pairs (bench.pairs), ours and baseline then
    being each side's median."""

    benchmark: str
    metric: str
    ours: float | None
    baseline: float | None = None
    unit: str = ""
    target: str = ""
    met: bool | None = None
    ratios: tuple[float, ...] = ()  # ours / baseline of each pair, when measured in pairs

    @property
    def ratio(self) -> float | None:
        if self.ratios:
            return median(self.ratios)
        if self.ours is None or not self.baseline:
            return None
        return self.ours / self.baseline

    def cells(self) -> tuple[str, ...]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f} x"
        lowest_highest = spread(self.ratios)
        pairs = ("" if lowest_highest is None else
                 f"{lowest_highest[0]:.2f}-{lowest_highest[1]:.2f} ({len(self.ratios)})")
        met = {True: "yes", False: "NO", None: ""}[self.met]
        return (self.benchmark, self.metric, fmt(self.ours, self.unit),
                fmt(self.baseline, self.unit), ratio, pairs, self.target, met)


def ratio_row(benchmark: str, metric: str, ours: float | None, baseline: float | None,
              unit: str, at_least: float, *, ratios: tuple[float, ...] = ()) -> Row:
    """A figure where more is better, with a target relative to the baseline (the median
    pair ratio, when measured in pairs)."""
    row = Row(benchmark, metric, ours, baseline, unit, f">= {at_least:g} x baseline",
              ratios=ratios)
    return replace(row, met=None if row.ratio is None else row.ratio >= at_least)


def ceiling_row(benchmark: str, metric: str, ours: float | None, baseline: float | None,
                unit: str, at_most: float, *, ratios: tuple[float, ...] = ()) -> Row:
    """A figure where less is better, with an absolute target."""
    met = None if ours is None else ours <= at_most
    return Row(benchmark, metric, ours, baseline, unit, f"<= {at_most:g} {unit}".rstrip(), met,
               ratios)


def floor_row(benchmark: str, metric: str, ours: float | None, baseline: float | None,
              unit: str, at_least: float, *, ratios: tuple[float, ...] = ()) -> Row:
    """A figure where more is better, with an absolute target."""
    met = None if ours is None else ours >= at_least
    return Row(benchmark, metric, ours, baseline, unit, f">= {at_least:g} {unit}".rstrip(), met,
               ratios)


def spread_row(benchmark: str, metric: str, ratios: tuple[float, ...], at_most: float) -> Row:
    """The range of a figure's pair ratios, highest less lowest, against a ceiling: a median
    ratio means little if one pair can read far from another."""
    value = width(ratios)
    return Row(benchmark, metric, value, None, "", f"<= {at_most:g}",
               None if value is None else value <= at_most)


def info_row(benchmark: str, metric: str, ours: float | None, baseline: float | None = None,
             unit: str = "", *, ratios: tuple[float, ...] = ()) -> Row:
    return Row(benchmark, metric, ours, baseline, unit, ratios=ratios)


@dataclass
class Section:
    """One benchmark's part of the report: its rows, how it was measured, what else was
    seen (markdown lines), and the profiles taken."""

    title: str
    rows: list[Row] = field(default_factory=list)
    method: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    profiles: list[ProfileSummary] = field(default_factory=list)


def pairs_note(what: str, figure: Figure, unit: str) -> str:
    """Each pair's figures in the order they ran, for a section's details."""
    cells = []
    for index, (base, ours) in enumerate(
            zip(figure.baseline_values, figure.ours_values, strict=True), 1):
        ratio = f" ({ours / base:.2f} x)" if ours is not None and base else ""
        cells.append(f"{index}. baseline {fmt(base, unit)}, ours {fmt(ours, unit)}{ratio}")
    return f"{what}, pair by pair: " + "; ".join(cells) + "."


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted `values`."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def render_text(rows: Iterable[Row]) -> str:
    """The table for a terminal: aligned columns."""
    table = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
             for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def render_markdown(rows: Iterable[Row]) -> str:
    return markdown_table(HEADERS, [row.cells() for row in rows])


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)
