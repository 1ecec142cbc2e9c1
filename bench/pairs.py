"""Ours against the baseline in pairs, A B A B: one measurement of the baseline, then one of
ours, as many times as asked, so that a figure is the median of several pair ratios rather
than one run's (the same code read 0.47 x one day and 0.68 x another).

The spread reported is the range of the pair ratios, lowest to highest: with three pairs
an interquartile range would say nothing more.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Pairs(Generic[T]):
    """What each side measured, pair by pair (`baseline[i]` ran just before `ours[i]`)."""

    baseline: tuple[T, ...]
    ours: tuple[T, ...]

    def figure(self, value: Callable[[T], float | None]) -> Figure:
        return Figure(tuple(value(run) for run in self.ours),
                      tuple(value(run) for run in self.baseline))


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure of every pair, ours next to the baseline's."""

    ours_values: tuple[float | None, ...]
    baseline_values: tuple[float | None, ...]

    @property
    def ours(self) -> float | None:
        return median(self.ours_values)

    @property
    def baseline(self) -> float | None:
        return median(self.baseline_values)

    @property
    def ratios(self) -> tuple[float, ...]:
        """ours / baseline of each pair in which both were measured."""
        return tuple(ours / base for ours, base
                     in zip(self.ours_values, self.baseline_values, strict=True)
                     if ours is not None and base)


def alternate(pairs: int, baseline: Callable[[int], T], ours: Callable[[int], T]) -> Pairs[T]:
    """Run `baseline(i)` then `ours(i)` for i in 1..pairs."""
    if pairs < 1:
        raise ValueError(f"at least one pair is needed, not {pairs}")
    runs = [(baseline(index), ours(index)) for index in range(1, pairs + 1)]
    return Pairs(tuple(base for base, _ in runs), tuple(own for _, own in runs))


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values measured (None where a run measured nothing)."""
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def spread(ratios: Sequence[float]) -> tuple[float, float] | None:
    """The lowest and the highest pair ratio."""
    return (min(ratios), max(ratios)) if ratios else None


def width(ratios: Sequence[float]) -> float | None:
    """The highest pair ratio less the lowest: how far one pair can be trusted, as a number
    a target can bound."""
    lowest_highest = spread(ratios)
    return None if lowest_highest is None else lowest_highest[1] - lowest_highest[0]
