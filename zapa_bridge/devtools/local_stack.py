"""The local stack: every process of a deployment on one machine, started by honcho from
the Procfile, plus an embedded Redis and the zapw simulator when none are given.

The simulator's line is added to a copy of the Procfile so the deployment's own Procfile
stays exactly what production runs.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from zapa_bridge.config import DEFAULT_REDIS_URL, Settings, load_settings
from zapa_bridge.devtools.embedded_redis import EmbeddedRedis, answers, free_port
from zapa_bridge.devtools.replicated_redis import ReplicatedRedis
from zapa_bridge.redaction import redact_url
from zapa_bridge.web.webhooks import WEBHOOK_PATH

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".zapa"
SIMULATED_SESSION = "default"
LOCAL_COALESCE = "1.5"  # seconds: ZAPA_INBOUND_COALESCE unless the operator set it


def zapw_environment(settings: Settings) -> list[str]:
    """The lines zapw needs so its webhooks reach this deployment."""
    token = settings.webhook_token.get_secret_value() if settings.webhook_token else None
    url = f"{settings.public_url.rstrip('/')}{WEBHOOK_PATH}"
    lines = [f"WEBHOOK_URL={url}?token={token}" if token else f"WEBHOOK_URL={url}",
             "ENABLE_WEBHOOK=true"]
    if settings.zapw_api_key:
        lines.append(f"API_KEY={settings.zapw_api_key.get_secret_value()}")
    if not token:
        lines.append("# ZAPA_WEBHOOK_TOKEN is not set: set it, or sign requests through a proxy")
    return lines


def next_steps(simulated: bool) -> list[str]:
    """What to try once the stack is up: the banner prints these, and README.md lists the
    same (a test keeps them in step)."""
    steps = [
        "zapa-bridge simulate inbound --session default --from 5511988887777 --text hi",
        "zapa-bridge simulate sends        # the echo handler's reply, as the simulator got it",
    ] if simulated else ["zapa-bridge check                # the bridge, its key, Redis"]
    return [*steps,
            "zapa-bridge send --to 5511988887777 --text hello --session default",
            "zapa-bridge status <id>           # queued -> sending -> sent, where it stops"]


@dataclass
class LocalStack:
    bind: str = "127.0.0.1:8000"
    embedded_redis: bool = False
    # A master, a replica and three Sentinels instead of one server; sends and webhooks then
    # wait for the replica (ZAPA_REDIS_WAIT_REPLICAS=1), as a replicated deployment's should.
    replicated_redis: bool = False
    simulate_bridge: bool = True
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    redis: EmbeddedRedis | ReplicatedRedis | None = None

    def prepare(self) -> None:
        """Fill in the environment every process gets; start Redis if it has to."""
        env = self.env
        env.setdefault("ZAPA_ENV", "development")
        env.setdefault("ZAPA_INBOUND_TASK", "zapa.echo")
        # Bursts on, so a user's quick messages visibly come back as one echo.
        env.setdefault("ZAPA_INBOUND_COALESCE", LOCAL_COALESCE)
        env.setdefault("ZAPA_WEBHOOK_TOKEN", secrets.token_urlsafe(24))
        env.setdefault("ZAPA_ADMIN_TOKEN", secrets.token_urlsafe(24))
        env.setdefault("ZAPA_PUBLIC_URL", f"http://{self.bind}")
        env["ZAPA_WEB_BIND"] = self.bind
        # The Procfile's commands (gunicorn, celery) live beside this interpreter.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if self.replicated_redis:
            self.redis = ReplicatedRedis().start()
            env["REDIS_URL"] = self.redis.url
            env.setdefault("ZAPA_REDIS_WAIT_REPLICAS", "1")
        elif self.embedded_redis or ("REDIS_URL" not in env
                                     and not answers(DEFAULT_REDIS_URL)):
            self.redis = EmbeddedRedis().start()
            env["REDIS_URL"] = self.redis.url
        env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
        if self.simulate_bridge:
            env["ZAPW_URL"] = f"http://127.0.0.1:{free_port()}"
            env.setdefault("ZAPA_SESSIONS", SIMULATED_SESSION)
            env.setdefault("ZAPA_DEFAULT_SESSION", SIMULATED_SESSION)

    def redis_problem(self) -> str | None:
        """One line naming REDIS_URL and its address when it does not answer, else None."""
        url = self.env["REDIS_URL"]
        if answers(url):
            return None
        return (f"REDIS_URL={redact_url(url)} does not answer: start Redis there, unset "
                "REDIS_URL to use a local or embedded one, or pass --redis embedded")

    def shell_environment(self) -> dict[str, str]:
        """What a second shell needs for the CLI to see this stack as its processes do."""
        names = ("REDIS_URL", "ZAPW_URL", "ZAPW_API_KEY", "ZAPA_ENV", "ZAPA_PUBLIC_URL",
                 "ZAPA_WEBHOOK_TOKEN", "ZAPA_ADMIN_TOKEN", "ZAPA_DEFAULT_SESSION",
                 "ZAPA_SESSIONS", "ZAPA_INBOUND_TASK", "ZAPA_REDIS_WAIT_REPLICAS")
        shown = {name: self.env[name] for name in names if self.env.get(name)}
        shown["PATH"] = f"{Path(sys.executable).parent}:$PATH"
        return shown

    def export_line(self) -> str:
        return "export " + " ".join(f"{name}={shlex.quote(value)}" if name != "PATH"
                                    else f'PATH="{value}"'
                                    for name, value in self.shell_environment().items())

    def settings(self) -> Settings:
        names = ("ZAPA_PUBLIC_URL", "ZAPA_WEBHOOK_TOKEN", "ZAPW_URL", "REDIS_URL",
                 "ZAPA_INBOUND_COALESCE")
        return load_settings(**{name: self.env[name] for name in names if name in self.env})

    def procfile(self) -> Path:
        """The Procfile, plus the simulator when it is part of the stack."""
        if not self.simulate_bridge:
            return ROOT / "Procfile"
        settings = self.settings()
        webhook = zapw_environment(settings)[0].removeprefix("WEBHOOK_URL=")
        port = settings.zapw_base_url.rsplit(":", 1)[1]
        bridge = (f"bridge: python -m zapa_bridge.simulator --port {port} "
                  f"--webhook-url '{webhook}' --session {SIMULATED_SESSION} "
                  "--connect-delay 3")
        STATE_DIR.mkdir(exist_ok=True)
        path = self.procfile_path()
        path.write_text((ROOT / "Procfile").read_text().rstrip("\n") + f"\n{bridge}\n")
        return path

    def banner(self) -> str:
        env, bind = self.env, self.bind
        redis_note = ("  (master, replica and 3 Sentinels, embedded, discarded on exit)"
                      if isinstance(self.redis, ReplicatedRedis)
                      else "  (embedded, discarded on exit)" if self.redis else "")
        bridge_note = (f"zapw simulator; session '{SIMULATED_SESSION}' connects by itself"
                       if self.simulate_bridge else "zapw")
        settings = self.settings()
        zapw_lines = "\n".join(f"  {line}" for line in zapw_environment(settings))
        steps = "".join(f"  {step}\n" for step in next_steps(self.simulate_bridge))
        bursts = (f"a sender's messages within {settings.inbound_coalesce:g} s of each other "
                  "as one task (ZAPA_INBOUND_COALESCE)" if settings.inbound_coalesce > 0
                  else "off (ZAPA_INBOUND_COALESCE=0): each message is its own task")
        return f"""zapa-bridge local stack
  redis   {env['REDIS_URL']}{redis_note}
  web     http://{bind}  (GET /healthz, /readyz, /metrics; POST {WEBHOOK_PATH})
  admin   http://{bind}/admin/  and  /api/v1/integration/  token {env['ZAPA_ADMIN_TOKEN']}
  worker  celery: zapa.maintenance, zapa.events, zapa.send.high/default/low, inbound
  beat    reconciliation every {env.get('ZAPA_RECONCILE_INTERVAL', '30')} s
  bridge  {env.get('ZAPW_URL', 'http://127.0.0.1:3000')} ({bridge_note})
  inbound {env['ZAPA_INBOUND_TASK']} on queue {env.get('ZAPA_INBOUND_QUEUE', 'zapa.inbound')}
  bursts  {bursts}

zapw's environment, to post its events here:
{zapw_lines}

In another shell:
  {self.export_line()}
{steps}Ctrl-C stops everything.
"""

    def run(self) -> int:
        """Run until Ctrl-C (or SIGTERM); everything started is stopped on the way out, the
        embedded Redis last. Returns 0 when stopped that way, else honcho's exit status
        (a process of the stack ended on its own, and honcho stopped the rest).

        honcho's output comes through this process, not straight to the terminal: when
        whatever reads it goes away (`| tee` killed by the same Ctrl-C), the lines are
        dropped here, and honcho never blocks on a broken pipe with its processes running.
        """
        honcho = shutil.which("honcho", path=str(Path(sys.executable).parent)) or "honcho"
        process = subprocess.Popen([honcho, "start", "-f", str(self.procfile()),
                                    "-d", str(ROOT)],
                                   env=self.env, cwd=ROOT, start_new_session=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        relay = threading.Thread(target=_relay, args=(process.stdout,), daemon=True)
        relay.start()

        asked_to_stop = threading.Event()

        def forward(signum: int, _frame: object) -> None:
            asked_to_stop.set()
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGHUP, forward)
        try:
            status = process.wait()
            relay.join(5)
            return 0 if asked_to_stop.is_set() else status
        finally:
            if self.redis is not None:
                self.redis.close()
            if self.simulate_bridge:
                self.procfile_path().unlink(missing_ok=True)

    @staticmethod
    def procfile_path() -> Path:
        return STATE_DIR / f"Procfile.stack-{os.getpid()}"


def _relay(source: IO[bytes] | None) -> None:
    """Copy honcho's output to ours until it ends; once ours is gone, keep reading (so
    honcho never blocks) and drop it."""
    if source is None:
        return
    sink: IO[bytes] | None = sys.stdout.buffer
    for chunk in iter(source.readline, b""):
        if sink is None:
            continue
        try:
            sink.write(chunk)
            sink.flush()
        except (BrokenPipeError, OSError, ValueError):
            sink = None
