"""The project's own processes, started for real as the Procfile runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Generic, TypeVar

import requests

from tests.helpers import wait_until
from zapa_bridge.devtools.embedded_redis import free_port

ROOT = Path(__file__).resolve().parent.parent


class ServiceProcess:
    """One child process in a session of its own, its output in a log file."""

    name = "process"

    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self, new_output: bytes) -> bool:
        raise NotImplementedError

    def start(self) -> ServiceProcess:
        self.log_path.touch()
        offset = self.log_path.stat().st_size
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv(), cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self._ready_after(offset), timeout=30, what=f"{self.name} ready")
        return self

    def _ready_after(self, offset: int) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log()[-3000:]}")
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return self.is_ready(handle.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Worker(ServiceProcess):
    """`celery worker`, as the Procfile runs it."""

    name = "worker"

    def __init__(self, log_path: Path, env: dict[str, str], concurrency: int = 4) -> None:
        super().__init__(log_path, env)
        self.concurrency = concurrency

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
                "-l", "INFO", "-c", str(self.concurrency), "--without-mingle",
                "--without-gossip", "--without-heartbeat", "-n", f"test-{self.log_path.stem}@%h"]

    def is_ready(self, new_output: bytes) -> bool:
        return b" ready." in new_output


class Web(ServiceProcess):
    """gunicorn serving the app factory, as the Procfile runs it."""

    name = "web"

    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        super().__init__(log_path, {**env, "ZAPA_WEB_BIND": f"127.0.0.1:{self.port}"})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                "zapa_bridge.web:create_app()"]

    def is_ready(self, new_output: bytes) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:  # not listening yet, or its workers still booting
            return False


class Beat(ServiceProcess):
    """`celery beat`, as the Procfile runs it (RedBeat, its lock in Redis)."""

    name = "beat"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat", "-l", "INFO"]

    def is_ready(self, new_output: bytes) -> bool:
        return b"beat: Starting..." in new_output

    def dispatches(self) -> int:
        """How many periodic tasks this beat has sent so far (its log's "Sending due task")."""
        return self.log_path.read_bytes().count(b"Sending due task")


P = TypeVar("P", bound=ServiceProcess)


class Started(Generic[P]):
    """The processes of one kind a test started, to stop them all when it ends."""

    def __init__(self) -> None:
        self.processes: list[P] = []

    def __len__(self) -> int:
        return len(self.processes)

    def start(self, process: P) -> P:
        self.processes.append(process)
        process.start()
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
