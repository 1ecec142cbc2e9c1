"""The benchmark rows with absolute floors and the spread of a ratio, and the scale
benchmark's per-depth readings (pure helpers; the benchmarks themselves assert nothing)."""

from __future__ import annotations

import pytest

from bench.pairs import width
from bench.results import floor_row, spread_row
from bench.scale import Checkpoint, Fill, bytes_at, microseconds_at, single_rate


def test_the_width_is_the_highest_ratio_less_the_lowest() -> None:
    assert width([0.82, 0.85, 0.80]) == pytest.approx(0.05)
    assert None is width([])


def test_a_spread_row_bounds_the_width_of_the_ratios() -> None:
    row = spread_row("W", "spread", (0.80, 0.83, 0.82), 0.05)

    assert row.ours == pytest.approx(0.03)
    assert row.met is True
    assert row.target == "<= 0.05"
    assert row.cells()[4:6] == ("", "")  # a spread has no ratio of its own


def test_a_wide_spread_misses_and_one_pair_has_none() -> None:
    assert spread_row("W", "spread", (0.7, 0.9), 0.05).met is False
    assert spread_row("W", "spread", (), 0.05).met is None


def test_a_floor_is_met_at_or_above_it_on_ours_median() -> None:
    row = floor_row("L", "events/s", 200.0, 400.0, "/s", 200.0, ratios=(0.4, 0.6))

    assert row.met is True
    assert row.target == ">= 200 /s"
    assert row.ratio == 0.5
    assert floor_row("L", "events/s", 199.0, None, "/s", 200.0).met is False
    assert floor_row("L", "events/s", None, None, "/s", 200.0).met is None


def test_scale_readings_are_none_at_a_depth_a_fill_did_not_reach() -> None:
    run = Fill("ours", [Checkpoint(100, 2e-5, 1500.0), Checkpoint(300, 4e-5, 1600.0),
                        Checkpoint(1000, 1e-4, 1700.0)])

    assert bytes_at(run, 300) == 1600.0
    assert None is bytes_at(run, 10)
    assert microseconds_at(run, 100) == pytest.approx(20.0)
    # Only the windows at the depths asked for: the deeper one is not averaged in.
    assert single_rate(run, (100, 300)) == pytest.approx(1 / 3e-5)
    assert None is single_rate(run, (10,))
