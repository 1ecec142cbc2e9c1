"""`zapa-bridge stack`, the README's first command, run as a user runs it: a subprocess with
no REDIS_URL, talked to over HTTP and through the CLI, then stopped with a signal."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import socket
import subprocess
import sys
import termios
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_until
from zapa_bridge.devtools.embedded_redis import answers, free_port
from zapa_bridge.devtools.local_stack import ROOT, LocalStack, next_steps

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "zapa-bridge")
TO = "5511988887777"


def processes_mentioning(cmdline_needles: tuple[str, ...], environ_needle: str) -> list[int]:
    """Pids whose command line holds one of the needles, or whose environment the marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(needle in cmdline for needle in cmdline_needles) or environ_needle in environ:
            found.append(int(entry.name))
    return found


class Stack:
    """One `zapa-bridge stack --redis embedded` process and what it printed."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.bind = f"127.0.0.1:{self.port}"
        self.log_path = tmp_path / "stack.log"
        # Inherited by every process the stack starts, so the test can find each of them.
        self.marker = f"ZAPA_TEST_STACK={uuid.uuid4().hex}"
        env = {key: value for key, value in os.environ.items()
               if key not in ("REDIS_URL", "ZAPW_URL", "ZAPA_ENV", "ZAPA_WEBHOOK_TOKEN",
                              "ZAPA_ADMIN_TOKEN", "ZAPA_SPOOL_PATH")}
        env.update(ZAPA_RECONCILE_INTERVAL="1", ZAPA_TEST_STACK=self.marker.split("=", 1)[1])
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [CLI, "stack", "--redis", "embedded", "--bind", self.bind],
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.redis_url = wait_until(self._banner_redis_url, timeout=30, what="stack banner")
        self.redis_port = int(self.redis_url.rsplit(":", 1)[1].split("/", 1)[0])
        self.zapw_url = self._banner_value("ZAPW_URL")
        self.cli_env = {**os.environ, "REDIS_URL": self.redis_url, "ZAPW_URL": self.zapw_url}

    def _banner_value(self, name: str) -> str:
        for word in self.log().split():
            if word.startswith(f"{name}="):
                return word.split("=", 1)[1]
        raise AssertionError(f"{name} not in the banner:\n{self.log()}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([CLI, *args], env=self.cli_env, capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def in_second_shell(self, command: str) -> subprocess.CompletedProcess[str]:
        """`command` in a new shell that has nothing but the banner's export line."""
        export = next(line.strip() for line in self.log().splitlines()
                      if line.strip().startswith("export "))
        return subprocess.run(["bash", "-c", f"{export}\n{command}"],
                              env={"HOME": os.environ.get("HOME", "/"), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=60)

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"stack exited with {self.process.returncode}:\n"
                                 f"{self.log()[-3000:]}")

    def _banner_redis_url(self) -> str | None:
        self._alive()
        for line in self.log().splitlines():
            if line.startswith("  redis"):
                return line.split()[1]
        return None

    def ready(self) -> bool:
        self._alive()
        try:
            with requests.get(f"http://{self.bind}/readyz", timeout=0.5) as response:
                return response.status_code == 200
        except requests.RequestException:
            return False

    def leftovers(self) -> list[int]:
        simulator_port = self.zapw_url.rsplit(":", 1)[1]
        return processes_mentioning((self.bind, f"127.0.0.1:{self.redis_port}",
                                     f"--port {simulator_port}"), self.marker)

    def kill_everything(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # honcho and its processes run in sessions of their own: find them by the marker.
        for pid in processes_mentioning((), self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def stack(tmp_path) -> Iterator[Stack]:
    started = Stack(tmp_path)
    try:
        wait_until(started.ready, timeout=45, interval=0.2, what="GET /readyz 200")
        yield started
    finally:
        started.kill_everything()


def assert_nothing_left(stack: Stack) -> None:
    stack.process.wait(timeout=30)
    assert stack.process.returncode == 0, stack.log()[-3000:]
    assert stack.log().rstrip().endswith("zapa-bridge local stack stopped")
    assert stack.leftovers() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", stack.port), timeout=1).close()
    assert not answers(stack.redis_url)


def test_stack_runs_the_whole_loop_from_the_readme_commands_and_ctrl_c_leaves_nothing(stack):
    session_url = f"{stack.zapw_url}/sessions/default"
    wait_until(lambda: requests.get(session_url, timeout=2).json()["data"]["status"]
               == "connected", timeout=30, what="the simulated session to connect")

    # A WhatsApp user writes; the echo handler answers through the same session.
    stack.cli("simulate", "inbound", "--session", "default", "--from", TO, "--text", "hi")
    wait_until(lambda: '"echo: hi"' in stack.cli("simulate", "sends").stdout, timeout=30,
               what="the echo reply to reach the simulator")

    # A service sends; zapw's receipts all arrive as message.sent, so it stops at sent.
    message_id = stack.cli("send", "--to", TO, "--text", "hello", "--session",
                           "default").stdout.strip()
    wait_until(lambda: '"status": "sent"' in stack.cli("status", message_id).stdout,
               timeout=30, what="the message to be sent")
    # The banner's export line is all a second shell needs: check agrees with the processes.
    check = stack.in_second_shell("zapa-bridge check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "configuration: ok" in check.stdout and "would refuse" not in check.stdout
    assert "WEBHOOK_URL=" in check.stdout and "?token=" in check.stdout

    # beat schedules the reconciliation every second and the worker runs it against zapw
    wait_until(lambda: "zapa.reconcile" in stack.log() and "'bridge_reachable': True"
               in stack.log(), timeout=30, what="a reconcile run by beat and the worker")

    os.killpg(stack.process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    assert_nothing_left(stack)


def test_sigterm_to_the_stack_process_alone_stops_web_worker_beat_and_redis(stack):
    # stack, redis, honcho, gunicorn x3, worker, beat, simulator
    assert len(stack.leftovers()) >= 9
    stack.process.send_signal(signal.SIGTERM)  # as `kill <pid>` or a supervisor would
    assert_nothing_left(stack)


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("REDIS_URL", "ZAPW_URL", "ZAPA_ENV", "ZAPA_WEBHOOK_TOKEN",
                          "ZAPA_ADMIN_TOKEN", "ZAPA_SPOOL_PATH", "ZAPA_DEFAULT_SESSION",
                          "ZAPA_SESSIONS")}
    return {**env, **extra}


def test_ctrl_c_stops_everything_when_the_output_is_piped_through_tee(tmp_path):
    """`scripts/stack 2>&1 | tee stack.log` in a terminal, then Ctrl-C: tee dies with the
    stack, and nothing may keep running, the embedded Redis included."""
    bind = f"127.0.0.1:{free_port()}"
    log = tmp_path / "stack.log"
    marker = uuid.uuid4().hex
    env = clean_env(ZAPA_RECONCILE_INTERVAL="1", ZAPA_TEST_STACK=marker)
    master, slave = pty.openpty()

    def take_the_terminal() -> None:  # runs in the child, after setsid
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    shell = subprocess.Popen(
        ["bash", "-c", f"scripts/stack --redis embedded --bind {bind} 2>&1 | tee {log}"],
        cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=take_the_terminal)
    os.close(slave)
    reader = threading.Thread(target=_drain, args=(master,), daemon=True)
    reader.start()
    try:
        redis_url = wait_until(lambda: next((line.split()[1] for line in _read(log).splitlines()
                                             if line.startswith("  redis")), None),
                               timeout=120, what="the banner")
        wait_until(lambda: _ready(bind), timeout=45, interval=0.2, what="GET /readyz 200")
        assert len(processes_mentioning((), f"ZAPA_TEST_STACK={marker}")) >= 9
        os.write(master, b"\x03")  # Ctrl-C at the terminal: SIGINT to bash, stack and tee
        shell.wait(timeout=30)
        wait_until(lambda: processes_mentioning((), f"ZAPA_TEST_STACK={marker}") == [],
                   timeout=30, what="every process of the stack to stop")
        assert not answers(redis_url)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(tuple(bind.split(":")), timeout=1).close()
    finally:
        for pid in processes_mentioning((), f"ZAPA_TEST_STACK={marker}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.close(master)


def test_an_unreachable_redis_url_stops_the_stack_before_its_banner(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = subprocess.run([CLI, "stack", "--bind", f"127.0.0.1:{free_port()}"], cwd=tmp_path,
                          env=clean_env(REDIS_URL=url), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"Error: REDIS_URL={url} does not answer: start Redis there, unset REDIS_URL to use "
        "a local or embedded one, or pass --redis embedded"]


def in_terminal(command: str, env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """`command` run by bash on a pseudo-terminal of its own; its exit status and output."""
    master, slave = pty.openpty()
    shell = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, stdin=slave,
                             stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    output = bytearray()
    with contextlib.suppress(OSError):  # EIO once the terminal's last writer is gone
        while chunk := os.read(master, 65536):
            output += chunk
    os.close(master)
    return shell.wait(timeout=timeout), output.decode(errors="replace")


def test_scripts_stack_in_a_terminal_with_an_unreachable_redis_says_so_and_fails():
    url = f"redis://127.0.0.1:{free_port()}/0"
    status, output = in_terminal(f"scripts/stack --bind 127.0.0.1:{free_port()}",
                                 clean_env(REDIS_URL=url))
    assert status == 1
    assert output.strip().splitlines()[-1] == (
        f"Error: REDIS_URL={url} does not answer: start Redis there, unset REDIS_URL to use "
        "a local or embedded one, or pass --redis embedded")
    assert "zapa-bridge local stack" not in output  # no banner


def test_scripts_stack_returns_the_failure_of_a_process_that_ends_on_its_own():
    with socket.socket() as taken:  # the web process cannot bind: gunicorn gives up
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        marker = uuid.uuid4().hex
        status, output = in_terminal(f"scripts/stack --redis embedded --bind {bind}",
                                     clean_env(ZAPA_TEST_STACK=marker))
    assert status != 0, output[-2000:]
    assert "Connection in use" in output
    wait_until(lambda: processes_mentioning((), f"ZAPA_TEST_STACK={marker}") == [],
               timeout=30, what="every process of the stack to stop")


def test_the_banner_and_the_readme_give_the_same_steps():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("It prints what runs where; then, in another shell:", 1)[1]
    commands = block.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert commands[0].startswith("export ")
    assert commands[1:] == next_steps(simulated=True)


def test_an_external_bridge_gets_no_default_session(redis_db):
    local = LocalStack(simulate_bridge=False, env=clean_env(REDIS_URL=os.environ["REDIS_URL"]))
    local.prepare()
    assert "ZAPA_DEFAULT_SESSION" not in local.env
    assert "ZAPA_DEFAULT_SESSION" not in local.export_line()
    assert f"REDIS_URL={os.environ['REDIS_URL']}" in local.export_line()


def test_the_stack_turns_bursts_on_for_the_echo_unless_the_operator_set_them(redis_db):
    env = clean_env(REDIS_URL=os.environ["REDIS_URL"])
    env.pop("ZAPA_INBOUND_COALESCE", None)
    local = LocalStack(simulate_bridge=False, env=env)
    local.prepare()
    assert local.env["ZAPA_INBOUND_COALESCE"] == "1.5"
    assert ("bursts  a sender's messages within 1.5 s of each other as one task"
            in local.banner())

    off = LocalStack(simulate_bridge=False, env={**env, "ZAPA_INBOUND_COALESCE": "0"})
    off.prepare()
    assert off.env["ZAPA_INBOUND_COALESCE"] == "0"
    assert "bursts  off (ZAPA_INBOUND_COALESCE=0)" in off.banner()


def test_a_replicated_redis_stack_points_every_process_at_its_sentinels():
    local = LocalStack(replicated_redis=True, env=clean_env())
    try:
        local.prepare()
        assert local.env["REDIS_URL"].startswith("sentinel://127.0.0.1:")
        assert local.env["ZAPA_REDIS_WAIT_REPLICAS"] == "1"
        assert answers(local.settings().redis)
        assert "master, replica and 3 Sentinels" in local.banner()
        assert "ZAPA_REDIS_WAIT_REPLICAS=1" in local.export_line()
    finally:
        assert local.redis is not None
        local.redis.close()


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _ready(bind: str) -> bool:
    try:
        with requests.get(f"http://{bind}/readyz", timeout=0.5) as response:
            return response.status_code == 200
    except requests.RequestException:
        return False
