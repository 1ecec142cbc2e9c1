"""Timers for what happens later on its own (a QR scanned, a receipt arriving).

Every timer is a daemon and is cancelled on close, so a stopped simulator leaves no
thread behind that could post a webhook into the next test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Scheduler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timers: set[threading.Timer] = set()
        self._closed = False

    def call_later(self, delay: float, action: Callable[..., Any], *args: Any) -> None:
        """Run `action(*args)` in `delay` seconds, unless closed before."""

        def run() -> None:
            with self._lock:
                self._timers.discard(timer)
                if self._closed:
                    return
            action(*args)

        timer = threading.Timer(max(0.0, delay), run)
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            self._timers.add(timer)
        timer.start()

    def cancel_all(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.cancel_all()
