"""The facts a reader needs to weigh the numbers: the machine, the software, the commit."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from bench.processes import ROOT

PACKAGES = ("celery", "kombu", "redis", "hiredis", "flask", "werkzeug", "gunicorn", "requests",
            "py-spy")


def facts(redis_version: str) -> dict[str, str]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": f"{os.cpu_count()} ({cpu_model()})",
        "memory": memory_total(),
        "system": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Redis": f"{redis_version} (embedded, private, loopback)",
        "packages": ", ".join(f"{name} {version(name)}" for name in PACKAGES),
        "commit": commit(),
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def memory_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def commit() -> str:
    """The commit measured, and whether the working tree differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=normal", "--", "zapa_bridge",
                    "workers", "celeryconfig.py", "gunicorn.conf.py")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head or "unknown"
