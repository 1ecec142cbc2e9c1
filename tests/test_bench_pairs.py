"""The benchmarks' pairing: A B A B order, the median pair ratio and its range."""

from __future__ import annotations

import pytest

from bench.pairs import Figure, alternate, median, spread
from bench.results import ceiling_row, info_row, pairs_note, ratio_row


def test_alternate_runs_the_baseline_then_ours_pair_by_pair() -> None:
    order: list[str] = []

    def baseline(pair: int) -> str:
        order.append(f"B{pair}")
        return f"B{pair}"

    def ours(pair: int) -> str:
        order.append(f"A{pair}")
        return f"A{pair}"

    pairs = alternate(3, baseline, ours)

    assert order == ["B1", "A1", "B2", "A2", "B3", "A3"]
    assert pairs.baseline == ("B1", "B2", "B3")
    assert pairs.ours == ("A1", "A2", "A3")


def test_alternate_refuses_no_pairs() -> None:
    with pytest.raises(ValueError):
        alternate(0, lambda _: 1.0, lambda _: 1.0)


def test_a_figure_is_each_sides_median_and_the_ratios_of_each_pair() -> None:
    figure = Figure(ours_values=(60.0, 50.0, 90.0), baseline_values=(100.0, 100.0, 100.0))

    assert figure.ours == 60.0
    assert figure.baseline == 100.0
    assert figure.ratios == (0.6, 0.5, 0.9)


def test_a_pair_that_measured_nothing_has_no_ratio() -> None:
    figure = Figure(ours_values=(None, 50.0, 80.0), baseline_values=(100.0, 0.0, 100.0))

    assert figure.ratios == (0.8,)
    assert figure.ours == 65.0
    assert None is median([None, None])


def test_the_spread_is_the_lowest_and_highest_ratio() -> None:
    assert spread([0.6, 0.9, 0.5]) == (0.5, 0.9)
    assert None is spread([])


def test_a_paired_row_shows_the_median_ratio_and_its_range() -> None:
    # The median of the ratios, not the ratio of the medians (60 / 100 here).
    row = ratio_row("B", "rate", 60.0, 100.0, "msg/s", 0.65, ratios=(0.5, 0.7, 0.9))

    assert row.ratio == 0.7
    assert row.met is True
    assert row.cells() == ("B", "rate", "60.0 msg/s", "100 msg/s", "0.70 x", "0.50-0.90 (3)",
                           ">= 0.65 x baseline", "yes")


def test_an_unpaired_row_keeps_the_plain_ratio_and_no_range() -> None:
    row = info_row("B", "rate", 50.0, 100.0, "/s")

    assert row.ratio == 0.5
    assert row.cells()[5] == ""


def test_a_ceiling_is_judged_on_ours_median() -> None:
    row = ceiling_row("W", "p99", 40.0, 20.0, "ms", 50.0, ratios=(1.5, 2.5))

    assert row.met is True
    assert row.ratio == 2.0


def test_the_pairs_note_lists_every_pair_in_order() -> None:
    figure = Figure(ours_values=(50.0, None), baseline_values=(100.0, 80.0))

    assert pairs_note("rate", figure, "/s") == (
        "rate, pair by pair: 1. baseline 100 /s, ours 50.0 /s (0.50 x); "
        "2. baseline 80.0 /s, ours -.")
