"""The `zapa-bridge` command: run the local stack, send and inspect messages, check setup."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from zapa_bridge.config import Settings, load_settings
from zapa_bridge.devtools.embedded_redis import answers
from zapa_bridge.devtools.local_stack import LocalStack, zapw_environment
from zapa_bridge.errors import ConfigError, ZapaError
from zapa_bridge.redaction import redact_url

if TYPE_CHECKING:
    from zapa_bridge.services import Services

ROOT = Path(__file__).resolve().parent.parent


@click.group()
def main() -> None:
    """zapa-bridge: Celery integration between the zapw WhatsApp bridge and Zapa."""


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _services() -> Services:
    """The core objects of this process, as the workers build them (with the settings
    checked first, so a configuration error reads as one)."""
    _settings()
    from workers.runtime import services

    return services()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True,
              help="Address of the web process.")
@click.option("--redis", "redis_mode", type=click.Choice(["auto", "embedded"]), default="auto",
              show_default=True,
              help="auto: REDIS_URL, else a Redis answering on the default address, else an "
                   "embedded one; embedded: always a fresh embedded Redis.")
@click.option("--bridge", "bridge_mode", type=click.Choice(["simulator", "external"]),
              default="simulator", show_default=True,
              help="simulator: run the built-in zapw simulator; external: use ZAPW_URL.")
def stack(bind: str, redis_mode: str, bridge_mode: str) -> None:
    """Run the local stack: Redis (embedded when none is configured), web, worker, beat and
    the zapw simulator."""
    _settings()
    local = LocalStack(bind=bind, embedded_redis=redis_mode == "embedded",
                       simulate_bridge=bridge_mode == "simulator")
    local.prepare()
    click.echo(local.banner())
    local.run()
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
    record = _services().store.get(message_id)
    if record is None:
        raise click.ClickException(f"no message {message_id}")
    _echo_json(record.as_dict())


@main.group(name="dead-letters")
def dead_letters() -> None:
    """List, replay or purge dead letters."""


@dead_letters.command(name="list")
@click.option("--limit", default=50, show_default=True)
def dead_letters_list(limit: int) -> None:
    _echo_json([record.as_dict() for record in _services().dead_letters.list(limit)])


@dead_letters.command(name="replay")
@click.argument("message_id")
def dead_letters_replay(message_id: str) -> None:
    try:
        record = _services().outbox.replay(message_id)
    except ZapaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{record.id} {record.status}")


@dead_letters.command(name="purge")
def dead_letters_purge() -> None:
    click.echo(f"purged {_services().dead_letters.purge()}")


@main.group(name="inbound-dead-letters")
def inbound_dead_letters() -> None:
    """List, replay or purge zapw events that could not be applied."""


@inbound_dead_letters.command(name="list")
@click.option("--limit", default=50, show_default=True)
@click.option("--body/--no-body", default=False, show_default=True,
              help="Include each event's body (it holds message text and numbers).")
def inbound_dead_letters_list(limit: int, body: bool) -> None:
    letters = _services().inbound_dead_letters.list(limit)
    _echo_json([letter.as_dict(with_body=body) for letter in letters])


@inbound_dead_letters.command(name="replay")
@click.argument("letter_id")
def inbound_dead_letters_replay(letter_id: str) -> None:
    try:
        letter = _services().inbound_dead_letters.replay(letter_id)
    except ZapaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{letter.id} queued again (replay {letter.replays})")


@inbound_dead_letters.command(name="purge")
def inbound_dead_letters_purge() -> None:
    click.echo(f"purged {_services().inbound_dead_letters.purge()}")


@main.command()
def check() -> None:
    """Validate the configuration, reach Redis and the bridge (with the API key), print
    zapw's settings."""
    settings = _settings()
    click.echo("configuration: ok")
    for require in (settings.require_webhook_auth, settings.require_admin_token):
        try:
            require()
        except ConfigError as exc:
            click.echo(f"web process would refuse to start: {exc}")
    redis_ok = answers(settings.redis_url)
    click.echo(f"redis {redact_url(settings.redis_url)}: "
               f"{'ok' if redis_ok else 'NOT REACHABLE'}")
    bridge_ok = _check_bridge(settings)
    click.echo("\nzapw's environment, to post its events here:")
    for line in zapw_environment(settings):
        click.echo(f"  {line}")
    if not (redis_ok and bridge_ok):
        sys.exit(1)


def _check_bridge(settings: Settings) -> bool:
    """`GET /health`, then `GET /sessions`: zapw serves /health without a key, so only an
    authenticated call shows whether ZAPW_API_KEY is right."""
    from contextlib import closing

    from zapa_bridge.bridge.client import BridgeClient
    from zapa_bridge.errors import BridgeUnauthorized

    url = settings.zapw_base_url
    with closing(BridgeClient.from_settings(settings)) as client:
        try:
            health = client.health()
        except ZapaError as exc:
            click.echo(f"bridge {url}: NOT REACHABLE ({exc})")
            return False
        click.echo(f"bridge {url}: {health.status}, up {health.uptime:.0f} s")
        try:
            sessions = client.list_sessions()
        except BridgeUnauthorized as exc:
            why = ("does not match zapw's API_KEY" if settings.zapw_api_key
                   else "is not set, and zapw requires a key")
            click.echo(f"bridge GET /sessions: REFUSED ({exc.status_code}): ZAPW_API_KEY {why}")
            return False
        except ZapaError as exc:
            click.echo(f"bridge GET /sessions: FAILED ({exc})")
            return False
    key = "ZAPW_API_KEY accepted" if settings.zapw_api_key else "no API key needed"
    count = f"{len(sessions)} session{'' if len(sessions) == 1 else 's'}"
    click.echo(f"bridge GET /sessions: ok, {count} ({key})")
    return True


@main.group()
def simulate() -> None:
    """Play WhatsApp's side on the zapw simulator (its control API at ZAPW_URL)."""


@simulate.command(name="inbound")
@click.option("--session", default="default", show_default=True)
@click.option("--from", "sender", required=True, help="The sender's number (or JID).")
@click.option("--text", help="Text of a text message.")
@click.option("--type", "kind", default="text", show_default=True,
              help="text, image, video, audio, document, location, contact, sticker.")
@click.option("--caption")
@click.option("--file-name")
@click.option("--group", help="A group id: the message comes from the group.")
@click.option("--simulator-url", envvar="ZAPW_URL", default="http://127.0.0.1:3000",
              show_default=True)
def simulate_inbound(session: str, sender: str, text: str | None, kind: str,
                     caption: str | None, file_name: str | None, group: str | None,
                     simulator_url: str) -> None:
    """Make a WhatsApp user send a message to a session; zapw posts it to zapa-bridge."""
    body = {key: value for key, value in {
        "type": kind, "sender": sender, "text": text, "caption": caption,
        "file_name": file_name, "group": group}.items() if value is not None}
    _echo_json(_control(simulator_url, "POST", f"/_sim/sessions/{session}/inbound", body))


@simulate.command(name="disconnect")
@click.argument("session")
@click.option("--simulator-url", envvar="ZAPW_URL", default="http://127.0.0.1:3000")
def simulate_disconnect(session: str, simulator_url: str) -> None:
    """Drop a session, as a phone going offline would."""
    _echo_json(_control(simulator_url, "POST", f"/_sim/sessions/{session}/disconnect", {}))


@simulate.command(name="connect")
@click.argument("session")
@click.option("--simulator-url", envvar="ZAPW_URL", default="http://127.0.0.1:3000")
def simulate_connect(session: str, simulator_url: str) -> None:
    """Bring a session back online."""
    _echo_json(_control(simulator_url, "POST", f"/_sim/sessions/{session}/connect", {}))


@simulate.command(name="sends")
@click.option("--simulator-url", envvar="ZAPW_URL", default="http://127.0.0.1:3000")
def simulate_sends(simulator_url: str) -> None:
    """List what the simulator accepted to send."""
    _echo_json(_control(simulator_url, "GET", "/_sim/sends", None))


@simulate.command(name="restart")
@click.option("--downtime", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds it refuses connections while it restores its sessions.")
@click.option("--drop-sessions", is_flag=True,
              help="Lose the WhatsApp credentials too: no session comes back.")
@click.option("--simulator-url", envvar="ZAPW_URL", default="http://127.0.0.1:3000")
def simulate_restart(downtime: float, drop_sessions: bool, simulator_url: str) -> None:
    """Restart the simulated zapw: sessions never scanned are gone, the others reconnect."""
    _echo_json(_control(simulator_url, "POST", "/_sim/restart",
                        {"downtime": downtime, "drop_sessions": drop_sessions}))


def _control(base_url: str, method: str, path: str, body: dict[str, Any] | None) -> Any:
    import requests

    try:
        answer = requests.request(method, base_url.rstrip("/") + path, json=body, timeout=10)
    except requests.RequestException as exc:
        raise click.ClickException(f"simulator unreachable at {base_url}: "
                                   f"{type(exc).__name__}") from None
    if answer.status_code >= 400:
        raise click.ClickException(f"simulator answered {answer.status_code}: {answer.text}")
    return answer.json()
