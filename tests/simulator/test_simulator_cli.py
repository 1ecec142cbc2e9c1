"""`python -m zapa_bridge.simulator` runs as its own process and stops cleanly on SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_until
from zapa_bridge.bridge.client import BridgeClient
from zapa_bridge.simulator.__main__ import build_config, parse_args

ROOT = Path(__file__).resolve().parent.parent


def run(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "zapa_bridge.simulator", *args], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


def listening_url(process: subprocess.Popen[bytes], log: Path) -> str:
    def announced() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"simulator exited: {log.read_text()}")
        found = re.search(r"listening on (http://\S+) ", log.read_text())
        return found.group(1) if found else None

    return wait_until(announced, timeout=15, what="the listening line")


def test_the_cli_serves_zapw_posts_webhooks_and_stops_on_sigterm(tmp_path, receiver):
    log = tmp_path / "sim.log"
    process = run(log, "--host", "127.0.0.1", "--port", "0", "--webhook-url", receiver.url,
                  "--api-key", "k", "--connect-delay", "0.05", "--session", "s1", "s2",
                  "--auto-status", "delivered,read", "--webhook-retry-delay", "0.05")
    try:
        url = listening_url(process, log)
        client = BridgeClient(url, api_key="k", timeout=5)
        try:
            assert client.health().service == "zapw"
            sessions = wait_until(lambda: (s := client.list_sessions())
                                  and all(x.connected for x in s) and s, timeout=5)
            assert sorted(s.id for s in sessions) == ["s1", "s2"]
        finally:
            client.close()
        assert len(receiver.wait_for("session.connected", count=2)) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "zapw simulator stopped" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_cli_stops_on_sigint_like_ctrl_c(tmp_path):
    log = tmp_path / "sim.log"
    process = run(log, "--port", "0")
    try:
        listening_url(process, log)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_ends_the_sessions_without_posting_session_disconnected(tmp_path, receiver,
                                                                         signum):
    log = tmp_path / "sim.log"
    process = run(log, "--port", "0", "--webhook-url", receiver.url, "--connect-delay", "0",
                  "--session", "s1", "s2")
    try:
        listening_url(process, log)
        receiver.wait_for("session.connected", count=2)
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The process is gone: whatever it was going to post has been posted.
    assert [p.event_type for p in receiver.received()] == ["session.connected"] * 2


@pytest.mark.parametrize(("flags", "flavour"), [((), "real"), (("--mock",), "mock")],
                         ids=["default", "mock"])
def test_it_runs_real_zapw_by_default_and_zapw_s_mock_mode_with_mock(tmp_path, flags, flavour):
    log = tmp_path / "sim.log"
    process = run(log, "--port", "0", *flags)
    try:
        url = listening_url(process, log)
        config = requests.get(f"{url}/_sim/config", timeout=5).json()
        assert (config["flavour"], config["auto_status"]) == (flavour, [])
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_cli_rejects_an_unknown_auto_status(tmp_path):
    log = tmp_path / "sim.log"
    process = run(log, "--port", "0", "--auto-status", "played")
    assert process.wait(timeout=15) == 2
    assert "auto_status: 'played' is not one of delivered, read" in log.read_text()


def test_the_cli_says_so_when_its_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        log = tmp_path / "sim.log"
        process = run(log, "--port", str(taken.getsockname()[1]))
        assert process.wait(timeout=15) == 1
    assert "cannot listen on 127.0.0.1:" in log.read_text()


def test_no_webhooks_keeps_the_url_and_posts_nothing_as_enable_webhook_unset():
    plain = build_config(parse_args(["--webhook-url", "http://127.0.0.1:9/hook"]))
    silent = build_config(parse_args(["--webhook-url", "http://127.0.0.1:9/hook",
                                      "--no-webhooks"]))
    assert (plain.webhook_url, plain.webhooks_enabled) == ("http://127.0.0.1:9/hook", True)
    assert (silent.webhook_url, silent.webhooks_enabled) == ("http://127.0.0.1:9/hook", False)
