"""The processes a benchmark starts: each in a session of its own with its output in a log
file, tracked so that every one is stopped at the end, on Ctrl-C and on errors too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import requests

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark could not run (a process did not start, a run stalled)."""


def wait_for(check: Callable[[], T], *, timeout: float, what: str,
             interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy, or raise BenchError."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Child:
    """A long-running process we started (worker, web server); stopped as a whole group."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str],
                 log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} not started"
        return self.process.pid

    def launch(self) -> Child:
        self.log_path.touch()
        self._offset = self.log_path.stat().st_size
        with self.log_path.open("ab") as log:
            # A session of its own: a Ctrl-C in the terminal reaches the runner only, which
            # then stops its children in order.
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, ready: Callable[[Child], bool], timeout: float = 60.0) -> Child:
        wait_for(lambda: self._ready(ready), timeout=timeout, what=f"{self.name} ready",
                 interval=0.05)
        return self

    def _ready(self, ready: Callable[[Child], bool]) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.process.returncode}; log "
                             f"{self.log_path}:\n{self.output()[-2000:]}")
        return ready(self)

    def output(self) -> str:
        """What it wrote since it was started."""
        with self.log_path.open("rb") as handle:
            handle.seek(self._offset)
            return handle.read().decode(errors="replace")

    def cpu_seconds(self) -> float:
        """CPU time used so far by this process and its live descendants."""
        return tree_cpu_seconds(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Children:
    """Every child a run started, stopped newest first by `stop_all`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._started: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str],
              ready: Callable[[Child], bool], timeout: float = 60.0) -> Child:
        return self.start_together([(name, argv)], env, ready, timeout)[0]

    def start_together(self, commands: Sequence[tuple[str, Sequence[str]]],
                       env: Mapping[str, str], ready: Callable[[Child], bool],
                       timeout: float = 60.0) -> list[Child]:
        """Launch every command first, then wait for each: they come up at about the same
        moment, not one start-up time apart."""
        children = [Child(name, argv, env, self.log_dir / f"{name}.log")
                    for name, argv in commands]
        for child in children:
            self._started.append(child)
            child.launch()
        return [child.wait_ready(ready, timeout) for child in children]

    def stop(self, *children: Child) -> None:
        for child in children:
            child.stop()
            if child in self._started:
                self._started.remove(child)

    def stop_all(self) -> None:
        while self._started:
            self._started.pop().stop()


def run_module(module: str, args: Sequence[str], env: Mapping[str, str],
               timeout: float) -> str:
    """Run `python -m module args` to the end and return its standard output."""
    return run_parallel([[module, *args]], env, timeout)[0]


def run_parallel(commands: Sequence[Sequence[str]], env: Mapping[str, str],
                 timeout: float) -> list[str]:
    """Run several `python -m ...` commands at once; their outputs, in order. Any failure
    or the timeout kills them all."""
    processes = [subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, env=dict(env),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  start_new_session=True)
                 for command in commands]
    deadline = time.monotonic() + timeout
    try:
        outputs = []
        for command, process in zip(commands, processes, strict=True):
            out, err = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
            if process.returncode != 0:
                raise BenchError(f"{' '.join(command)} failed ({process.returncode}):\n"
                                 f"{err.decode(errors='replace')[-2000:]}")
            outputs.append(out.decode())
        return outputs
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def http_ready(url: str) -> Callable[[Child], bool]:
    """Ready once `url` answers 200."""
    def check(_: Child) -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False
    return check


def log_says(marker: str) -> Callable[[Child], bool]:
    return lambda child: marker in child.output()


def tree_cpu_seconds(pid: int, *, with_reaped: bool = False) -> float:
    """user + system CPU seconds of `pid` and its live descendants (Linux /proc); with
    `with_reaped`, those of the children they already reaped too."""
    parents = _parent_map()
    family, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in family:
                family.add(child)
                frontier.append(child)
    return sum(_own_cpu_seconds(member, with_reaped) for member in family)


def direct_children(pid: int) -> list[int]:
    return [child for child, parent in _parent_map().items() if parent == pid]


def process_cpu_seconds(pid: int) -> float:
    return _own_cpu_seconds(pid)


def _parent_map() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat_fields(int(entry))
            if stat:
                parents[int(entry)] = int(stat[1])
    return parents


def _own_cpu_seconds(pid: int, with_reaped: bool = False) -> float:
    stat = _stat_fields(pid)
    if not stat:
        return 0.0
    # Fields after the command: state ppid ... utime (index 11) stime (12), then cutime
    # and cstime (13, 14): the children it reaped.
    last = 15 if with_reaped else 13
    return sum(int(value) for value in stat[11:last]) / CLOCK_TICKS


def _stat_fields(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command may hold spaces and parentheses: everything after its last ")" is fixed.
    return raw[raw.rindex(")") + 2:].split()
