"""Sampling profiles of running processes with py-spy, summed up where the time goes.

py-spy attaches to a process we started (a worker, gunicorn and its workers), samples the
threads that are not idle, and writes its raw format: one line per distinct stack,
`frame;frame;... count`, each frame `function (file:line)`. Three views of that:

- by component: each sample's innermost frame, grouped by the package it lies in;
- our functions: each sample charged to the innermost frame of our own code (zapa_bridge,
  workers), which is what that call costs, the library work it causes included;
- the top frames by self time.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TOP = 12
RATE = 100  # samples per second
# Library and standard-library files are named from their package down.
_LIBRARY_PREFIXES = (re.compile(r"^.*/site-packages/"), re.compile(r"^.*/lib/python3\.\d+/"))
OUR_PACKAGES = ("zapa_bridge/", "workers/")
COMPONENTS = (
    (OUR_PACKAGES, "zapa-bridge (ours)"),
    (("celery/", "kombu/", "billiard/", "vine/", "redbeat/"), "celery / kombu"),
    (("redis/",), "redis-py"),
    (("requests/", "urllib3/", "http/", "email/", "charset_normalizer/", "idna/"),
     "HTTP client (requests, http.client)"),
    (("flask/", "werkzeug/", "jinja2/", "itsdangerous/", "blinker/"), "flask / werkzeug"),
    (("gunicorn/",), "gunicorn"),
    (("logging/",), "logging"),
    (("json/",), "json"),
    (("socket.py", "selectors.py", "ssl.py", "socketserver.py"), "sockets"),
    (("threading.py", "concurrent/", "queue.py"), "threads (stdlib)"),
    (("bench/",), "bench"),
)


@dataclass
class ProfileSummary:
    """Where one process (group) spent its sampled, non-idle time."""

    title: str
    samples: int = 0
    by_component: Counter[str] = field(default_factory=Counter)
    ours: Counter[str] = field(default_factory=Counter)
    self_time: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    def share(self, count: int) -> str:
        return f"{100 * count / self.samples:.1f} %" if self.samples else "-"


class Sampler:
    """`py-spy record` attached to `pid` until `stop`; needs ptrace rights (root, or
    kernel.yama.ptrace_scope 0)."""

    def __init__(self, title: str, pid: int, out: Path, *, subprocesses: bool = False) -> None:
        self.title = title
        self.out = out
        self.log = out.with_suffix(".log")
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        # --gil: only what holds the interpreter, i.e. Python's CPU time, not threads that
        # wait on a socket or a queue.
        argv = [spy, "record", "--pid", str(pid), "--format", "raw", "--function", "--gil",
                "--full-filenames", "--rate", str(RATE), "--output", str(out)]
        if subprocesses:
            argv.append("--subprocesses")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def stop(self) -> ProfileSummary:
        """Stop sampling (py-spy writes its file on SIGINT) and sum the samples up."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.out.exists():
            reason = self.log.read_text(errors="replace").strip()[-500:]
            return ProfileSummary(self.title, error=reason or "py-spy wrote nothing")
        return summarize(self.title, self.out.read_text(errors="replace"))


def summarize(title: str, raw: str) -> ProfileSummary:
    summary = ProfileSummary(title)
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [short_frame(frame) for frame in stack.split(";")
                  if not frame.startswith(("process ", "thread "))]
        if not frames:
            continue
        count = int(count_text)
        summary.samples += count
        summary.self_time[frames[-1]] += count
        summary.by_component[component(frames[-1])] += count
        our_frame = next((frame for frame in reversed(frames) if is_ours(frame)), None)
        summary.ours[our_frame or "(outside our code)"] += count
    return summary


def short_frame(frame: str) -> str:
    """`f (/work/main/zapa_bridge/x.py:3)` -> `f (zapa_bridge/x.py:3)`; library files from
    their package (`redis/client.py`), standard library ones from the library root."""
    function, _, where = frame.rpartition(" (")
    if not function:
        return frame
    for prefix in _LIBRARY_PREFIXES:
        shorter = prefix.sub("", where, count=1)
        if shorter != where:
            return f"{function} ({shorter}"
    return f"{function} ({where.removeprefix(f'{ROOT}/')}"


def frame_file(frame: str) -> str:
    """`deliver (zapa_bridge/outbound/delivery.py:71)` -> `zapa_bridge/outbound/delivery.py`."""
    _, _, where = frame.rpartition(" (")
    return where.rstrip(")").rpartition(":")[0]


def is_ours(frame: str) -> bool:
    return frame_file(frame).startswith(OUR_PACKAGES)


def component(frame: str) -> str:
    path = frame_file(frame)
    for prefixes, name in COMPONENTS:
        if path.startswith(prefixes):
            return name
    return "other (stdlib, interpreter)"
