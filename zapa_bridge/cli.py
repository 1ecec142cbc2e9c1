"""The `zapa-bridge` command: run the local stack, send and inspect messages, check setup."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from zapa_bridge.config import DEFAULT_REDIS_URL, Settings, load_settings
from zapa_bridge.embedded_redis import EmbeddedRedis, answers
from zapa_bridge.errors import ConfigError, ZapaError
from zapa_bridge.web.webhooks import WEBHOOK_PATH

ROOT = Path(__file__).resolve().parent.parent


@click.group()
def main() -> None:
    """zapa-bridge: Celery integration between the zapw WhatsApp bridge and Zapa."""


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True,
              help="Address of the web process.")
@click.option("--redis", "redis_mode", type=click.Choice(["auto", "embedded"]), default="auto",
              show_default=True,
              help="auto: REDIS_URL, else a Redis answering on the default address, else an "
                   "embedded one; embedded: always a fresh embedded Redis.")
def stack(bind: str, redis_mode: str) -> None:
    """Run the local stack: Redis (embedded when none is configured), web, worker, beat."""
    _settings()
    env = dict(os.environ)
    env.setdefault("ZAPA_DEFAULT_SESSION", "default")
    env.setdefault("ZAPA_ENV", "development")
    env.setdefault("ZAPA_INBOUND_TASK", "zapa.echo")
    env.setdefault("ZAPA_WEBHOOK_TOKEN", secrets.token_urlsafe(24))
    env.setdefault("ZAPA_ADMIN_TOKEN", secrets.token_urlsafe(18))
    env["ZAPA_WEB_BIND"] = bind
    # The Procfile's commands (gunicorn, celery) live beside this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    embedded: EmbeddedRedis | None = None
    if redis_mode == "embedded" or ("REDIS_URL" not in os.environ
                                     and not answers(DEFAULT_REDIS_URL)):
        embedded = EmbeddedRedis().start()
        env["REDIS_URL"] = embedded.url
    redis_url = env.get("REDIS_URL", DEFAULT_REDIS_URL)
    inbound_queue = env.get("ZAPA_INBOUND_QUEUE", "zapa.inbound")
    env.setdefault("ZAPA_PUBLIC_URL", f"http://{bind}")
    stack_settings = load_settings(ZAPA_PUBLIC_URL=env["ZAPA_PUBLIC_URL"],
                                   ZAPA_WEBHOOK_TOKEN=env["ZAPA_WEBHOOK_TOKEN"])
    zapw_lines = "\n".join(f"  {line}" for line in zapw_environment(stack_settings))
    click.echo(f"""zapa-bridge local stack
  redis   {redis_url}{'  (embedded, discarded on exit)' if embedded else ''}
  web     http://{bind}  (GET /healthz, /readyz; POST {WEBHOOK_PATH})
  admin   http://{bind}/api/v1/integration/  token {env['ZAPA_ADMIN_TOKEN']}
  worker  celery, queues: zapa.maintenance, zapa.send.high/default/low
  beat    bridge reconciliation every {env.get('ZAPA_RECONCILE_INTERVAL', '30')} s
  bridge  {env.get('ZAPW_URL', 'http://127.0.0.1:3000')} (zapw)
  inbound {env['ZAPA_INBOUND_TASK']} on queue {inbound_queue}

zapw's environment, to post its events here:
{zapw_lines}

In another shell (with .venv/bin on PATH):
  export REDIS_URL={redis_url}
  zapa-bridge send --to 5511988887777 --text hello --session default
  zapa-bridge status <id>
  curl http://{bind}/readyz
Ctrl-C stops everything.
""")
    honcho = shutil.which("honcho", path=str(Path(sys.executable).parent)) or "honcho"
    process = subprocess.Popen([honcho, "start", "-f", str(ROOT / "Procfile"), "-d", str(ROOT)],
                               env=env, cwd=ROOT, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        process.wait()
    finally:
        if embedded is not None:
            embedded.close()
    click.echo("zapa-bridge local stack stopped")


@main.command()
@click.option("--to", required=True, help="Recipient, digits in international form.")
@click.option("--text", help="Text of a text message.")
@click.option("--type", "kind", default="text", show_default=True)
@click.option("--session", help="Bridge session to send through.")
@click.option("--from-number", help="Send through the session with this phone number.")
@click.option("--priority", default="default", show_default=True)
@click.option("--media-url")
@click.option("--caption")
@click.option("--file-name")
def send(to: str, text: str | None, kind: str, session: str | None, from_number: str | None,
         priority: str, media_url: str | None, caption: str | None,
         file_name: str | None) -> None:
    """Queue one message and print its id."""
    _settings()
    from workers.tasks import send_message

    try:
        result = send_message.delay(to=to, text=text, type=kind, session=session,
                                    from_number=from_number, priority=priority,
                                    media_url=media_url, caption=caption, file_name=file_name)
    except ZapaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.id)


@main.command()
@click.argument("message_id")
def status(message_id: str) -> None:
    """Print a message's status record and history."""
    from zapa_bridge.services import Services

    record = Services(_settings()).store.get(message_id)
    if record is None:
        raise click.ClickException(f"no message {message_id}")
    _echo_json(record.as_dict())


@main.group(name="dead-letters")
def dead_letters() -> None:
    """List, replay or purge dead letters."""


@dead_letters.command(name="list")
@click.option("--limit", default=50, show_default=True)
def dead_letters_list(limit: int) -> None:
    from zapa_bridge.services import Services

    _echo_json([record.as_dict() for record in Services(_settings()).dead_letters.list(limit)])


@dead_letters.command(name="replay")
@click.argument("message_id")
def dead_letters_replay(message_id: str) -> None:
    from workers.tasks import outbox

    _settings()
    try:
        record = outbox().replay(message_id)
    except ZapaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{record.id} {record.status}")


@dead_letters.command(name="purge")
def dead_letters_purge() -> None:
    from zapa_bridge.services import Services

    click.echo(f"purged {Services(_settings()).dead_letters.purge()}")


@main.command()
def check() -> None:
    """Validate the configuration, reach Redis and the bridge, print zapw's settings."""
    from zapa_bridge.bridge_client import BridgeClient

    settings = _settings()
    click.echo("configuration: ok")
    redis_ok = answers(settings.redis_url)
    click.echo(f"redis {settings.redis_url}: {'ok' if redis_ok else 'NOT REACHABLE'}")
    try:
        health = BridgeClient.from_settings(settings).health()
        click.echo(f"bridge {settings.zapw_base_url}: {health.status}, up {health.uptime:.0f} s")
        bridge_ok = True
    except ZapaError as exc:
        click.echo(f"bridge {settings.zapw_base_url}: NOT REACHABLE ({exc})")
        bridge_ok = False
    click.echo("\nzapw's environment, to post its events here:")
    for line in zapw_environment(settings):
        click.echo(f"  {line}")
    if not (redis_ok and bridge_ok):
        sys.exit(1)


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
