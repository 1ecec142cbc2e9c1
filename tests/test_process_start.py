"""How the Procfile's processes start: a configuration error is its lines alone (no
traceback) and a failed start, for web, worker and beat alike; the web process honours
`PORT` as honcho sets it; Flask's own commands that serve nothing need no credentials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.helpers import wait_until
from zapa_bridge.devtools.embedded_redis import free_port

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PROCESSES = {
    "web": [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "zapa_bridge.web:create_app()"],
    "worker": [str(BIN / "celery"), "-A", "workers.celery_app", "worker", "--pool", "solo"],
    "beat": [str(BIN / "celery"), "-A", "workers.celery_app", "beat"],
}


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ZAPA_WEB_BIND": f"127.0.0.1:{free_port()}", **env}
    return subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_a_configuration_error_is_its_line_alone_and_a_failed_start(process):
    done = run(PROCESSES[process], ZAPA_RATE_LIMIT="banana", ZAPA_DUE_POLL_INTERVAL="-1")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    problems = sorted({text for text in output.splitlines()
                       if text.startswith("invalid configuration: ")})
    assert problems == [
        "invalid configuration: ZAPA_DUE_POLL_INTERVAL: Input should be greater than 0",
        "invalid configuration: ZAPA_RATE_LIMIT: 'banana' is not a rate: write "
        "<count>/<seconds>s (e.g. 5/5s) or off",
    ]


def test_a_visibility_timeout_too_short_names_both_settings_and_their_values():
    done = run(PROCESSES["beat"], ZAPA_VISIBILITY_TIMEOUT="10", ZAPW_CONNECT_TIMEOUT="2",
               ZAPW_TIMEOUT="15")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "invalid configuration: ZAPA_VISIBILITY_TIMEOUT: ZAPA_VISIBILITY_TIMEOUT (10 s) must "
        "cover one send attempt, ZAPW_CONNECT_TIMEOUT (2 s) + ZAPW_TIMEOUT (15 s) + 4 s: "
        "raise it to 21 or lower the other two")


def test_the_web_process_listens_on_port_as_honcho_sets_it_from_the_procfile(tmp_path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "ZAPA_WEB_BIND"}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"  # the Procfile names gunicorn, as installed
    log = tmp_path / "honcho.log"
    with log.open("wb") as output:
        honcho = subprocess.Popen([str(BIN / "honcho"), "start", "-f", "Procfile", "-p",
                                   str(port), "web"], cwd=ROOT, env=env, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def answers() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(answers, timeout=30, interval=0.2, what=f"the web process on PORT {port}")
        assert f"Listening at: http://0.0.0.0:{port}" in log.read_text()
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(timeout=20)


def test_zapa_web_bind_wins_over_port():
    bind = f"127.0.0.1:{free_port()}"
    done = run([sys.executable, "-c", "import runpy; print(runpy.run_path('gunicorn.conf.py')"
                "['bind'])"], ZAPA_WEB_BIND=bind, PORT="5000")
    assert done.stdout.strip() == bind
    on_port = run([sys.executable, "-c", "import runpy; print(runpy.run_path("
                   "'gunicorn.conf.py')['bind'])"], ZAPA_WEB_BIND="", PORT="5000")
    assert on_port.stdout.strip() == "0.0.0.0:5000"


def test_flask_routes_runs_without_the_credentials_a_server_needs():
    env = {key: value for key, value in os.environ.items()
           if key not in ("ZAPA_WEBHOOK_TOKEN", "ZAPA_ADMIN_TOKEN")}
    done = subprocess.run([str(BIN / "flask"), "--app", "zapa_bridge.web:create_app",
                           "routes"], cwd=ROOT, env={**env, "ZAPA_ENV": "production"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "/api/v1/webhooks/whatsapp" in done.stdout


def test_a_server_still_refuses_to_start_without_them():
    done = run(PROCESSES["web"], ZAPA_ENV="production", ZAPA_WEBHOOK_TOKEN="",
               ZAPA_ADMIN_TOKEN="a" * 40)
    assert done.returncode == 2  # checked before a worker starts: none respawned
    assert ("invalid configuration: ZAPA_WEBHOOK_TOKEN: ZAPA_WEBHOOK_TOKEN or "
            "ZAPA_WEBHOOK_SECRET must be set when ZAPA_ENV is production") in done.stderr
    assert "Traceback" not in done.stderr


def fake_python(directory: Path, version: str) -> Path:
    """An interpreter that says it is `version` and fails every version check."""
    path = directory / f"python{version.rsplit('.', 1)[0]}"
    path.write_text(f'#!/bin/sh\n[ "$1" = -V ] && echo "Python {version}" && exit 0\nexit 1\n')
    path.chmod(0o755)
    return path


def test_an_interpreter_too_old_is_refused_before_anything_is_made(tmp_path):
    old = fake_python(tmp_path, "3.10.12")
    done = subprocess.run(["bash", "-c", "source scripts/ensure-venv"], cwd=ROOT,
                          env={**os.environ, "PYTHON": str(old)}, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"PYTHON={old} is Python 3.10.12: zapa-bridge needs "
                                   "Python 3.11 or newer")


def test_a_venv_made_by_an_older_interpreter_is_made_again(tmp_path):
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "ensure-venv").write_text((ROOT / "scripts/ensure-venv").read_text())
    (project / "pyproject.toml").write_text(
        '[project]\nname = "probe"\nversion = "0"\n[tool.setuptools]\npy-modules = []\n')
    (project / ".venv" / "bin").mkdir(parents=True)
    fake_python(project / ".venv" / "bin", "3.10.12").rename(project / ".venv/bin/python")
    done = subprocess.run(["bash", "-c", "source scripts/ensure-venv"], cwd=project,
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "note: .venv was made by an older Python" in done.stderr
    version = subprocess.run([str(project / ".venv/bin/python"), "-c",
                              "import sys; print(sys.version_info >= (3, 11))"],
                             capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == "True"
