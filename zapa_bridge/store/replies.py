"""Replies of our Redis clients, typed as what they are.

Every client we make (`store.connection`) sets `decode_responses=True`, so Redis answers
with `str`. redis-py's annotations do not follow that flag: every reply is `bytes | str`,
and zrange & co add the `withscores` shapes. These helpers narrow the type once, here,
instead of a cast at each call; they are casts, and convert nothing at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

# What redis-py says a string reply is; with decode_responses=True it is always `str`.
Reply = bytes | str


def text(reply: Reply) -> str:
    """A string reply (GET, HGET, ...) known to be present."""
    return cast(str, reply)


def optional_text(reply: Reply | None) -> str | None:
    """A string reply that is None when the key or field is absent."""
    return cast(str | None, reply)


def texts(reply: Sequence[object]) -> list[str]:
    """A list of strings: LRANGE, HVALS, KEYS, and ZRANGE & co called without
    `withscores` (the tuple shapes in redis-py's annotation never occur then)."""
    return cast(list[str], reply)


def text_set(reply: set[Reply]) -> set[str]:
    """SMEMBERS and the other set replies."""
    return cast(set[str], reply)


def text_hash(reply: dict[Reply, Reply]) -> dict[str, str]:
    """HGETALL: fields and values."""
    return cast(dict[str, str], reply)


def scored(reply: Sequence[object]) -> list[tuple[str, float]]:
    """ZRANGE & co called with `withscores=True` (and the default `score_cast_func=float`):
    (member, score) pairs, as RESP2, our clients' protocol, answers them."""
    return cast(list[tuple[str, float]], reply)
