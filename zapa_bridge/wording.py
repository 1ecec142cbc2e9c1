"""Counts in sentences operators read (health messages, the admin page)."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """`1 dead letter`, `2 dead letters`, `0 workers`: the noun's plural is `noun + s`, so
    pass the countable word last (`zapw event`, not `events of zapw`)."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
