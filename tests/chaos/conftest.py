"""Fixtures of the chaos suite: whole stacks, stopped after each test, and a summary of the
result lines at the end of the run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.stack import ChaosStack, start_stack


@pytest.fixture
def chaos(tmp_path: Path, redis_db: object) -> Iterator[Callable[..., ChaosStack]]:
    """Start a stack (on the suite's Redis unless `redis_url=` says otherwise)."""
    started: list[ChaosStack] = []

    def start(*, redis_url: str | None = None, web_redis_url: str | None = None,
              worker_env: dict[str, str] | None = None,
              env: dict[str, str] | None = None,
              reconcile_interval: str = "1") -> ChaosStack:
        stack = start_stack(tmp_path, redis_url=redis_url or os.environ["REDIS_URL"],
                            web_redis_url=web_redis_url, worker_env=worker_env, env=env,
                            reconcile_interval=reconcile_interval)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The scenarios' lines together (shown when the run names tests/chaos)."""
    lines = [value for status in ("passed", "failed")
             for report in terminalreporter.stats.get(status, [])
             if report.when == "call"
             for name, value in report.user_properties if name == "chaos"]
    if lines:
        terminalreporter.write_sep("-", "chaos results")
        for line in sorted(lines):
            terminalreporter.write_line(line)
