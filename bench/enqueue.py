"""`python -m bench.enqueue`: a producer process, enqueueing text messages through our real
path (`send_message.delay`: validation, status record, conversation lane, publish) or the
baseline's (`bare_send.delay`), one call per message as a service would.

Prints `{"count": n, "timed": k, "seconds": s, "fastest_per_call": f}`: the first few
calls warm up connections and scripts and are not timed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.bridge import SESSION

WARMUP_CALLS = 10
TEXT_CHARS = 100
_FILLER = "Thanks for your message, here is the answer you asked for, in a few words. " * 2

Send = Callable[[dict[str, Any]], None]


def recipient(index: int, recipients: int) -> str:
    """A 13-digit number; `recipients` distinct ones in turn (0: a new one every time)."""
    number = index % recipients if recipients else index
    return f"5511{number:09d}"


def text(index: int) -> str:
    """A short reply of TEXT_CHARS characters, unique so a send can be traced."""
    return f"[{index:09d}] {_FILLER}"[:TEXT_CHARS]


def message(index: int, recipients: int) -> dict[str, Any]:
    return {"to": recipient(index, recipients), "text": text(index), "session": SESSION}


def ours() -> Send:
    from workers.tasks import send_message

    return lambda kwargs: send_message.delay(**kwargs)


def baseline() -> Send:
    from bench.baseline_app import bare_send

    return lambda kwargs: bare_send.delay(**kwargs)


def enqueue(send: Send, first: int, count: int, recipients: int,
            chunks: int = 1) -> dict[str, Any]:
    """Enqueue, timing `chunks` equal runs of calls after the warm-up: on a shared machine
    the fastest chunk is the truest figure of what a call costs."""
    warmup = min(WARMUP_CALLS, count)
    for index in range(first, first + warmup):
        send(message(index, recipients))
    timed = count - warmup
    size = max(1, timed // max(1, chunks))
    chunk_seconds, index = [], first + warmup
    started = time.perf_counter()
    while index < first + count:
        chunk_start, end = time.perf_counter(), min(index + size, first + count)
        for number in range(index, end):
            send(message(number, recipients))
        chunk_seconds.append((end - index, time.perf_counter() - chunk_start))
        index = end
    return {"count": count, "timed": timed, "seconds": time.perf_counter() - started,
            "fastest_per_call": min((seconds / calls for calls, seconds in chunk_seconds),
                                    default=None)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.enqueue")
    parser.add_argument("--kind", choices=("ours", "baseline"), required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0, help="index of the first message")
    parser.add_argument("--recipients", type=int, default=0,
                        help="distinct recipients used in turn (0: every message its own)")
    parser.add_argument("--chunks", type=int, default=1,
                        help="time the calls in this many runs (see fastest_per_call)")
    args = parser.parse_args(argv)
    send = ours() if args.kind == "ours" else baseline()
    print(json.dumps(enqueue(send, args.first, args.count, args.recipients, args.chunks)))


if __name__ == "__main__":
    main()
