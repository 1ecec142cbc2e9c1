"""The `zapa-bridge` command: run the local stack, send and inspect messages, check setup."""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from zapa_bridge.config import Settings, load_settings
from zapa_bridge.devtools.local_stack import LocalStack, zapw_environment
from zapa_bridge.errors import ConfigError, InvalidMessage, QueueUnavailable, ZapaError
from zapa_bridge.outbound.messages import MessageType, Priority
from zapa_bridge.redaction import redact_url
from zapa_bridge.session_ids import path_segment, session_id_problem
from zapa_bridge.wording import counted

if TYPE_CHECKING:
    from zapa_bridge.services import Services

ROOT = Path(__file__).resolve().parent.parent


@click.group(name="zapa-bridge", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zapa-bridge", prog_name="zapa-bridge")
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
@click.option("--redis", "redis_mode", type=click.Choice(["auto", "embedded", "replicated"]),
              default="auto",
              show_default=True,
              help="auto: REDIS_URL, else a Redis answering on the default address, else an "
                   "embedded one; embedded: always a fresh embedded Redis; replicated: a "
                   "fresh embedded master, replica and 3 Sentinels.")
@click.option("--bridge", "bridge_mode", type=click.Choice(["simulator", "external"]),
              default="simulator", show_default=True,
              help="simulator: run the built-in zapw simulator; external: use ZAPW_URL.")
def stack(bind: str, redis_mode: str, bridge_mode: str) -> None:
    """Run the local stack: Redis (embedded when none is configured), web, worker, beat and
    the zapw simulator."""
    _settings()
    local = LocalStack(bind=bind, embedded_redis=redis_mode == "embedded",
                       replicated_redis=redis_mode == "replicated",
                       simulate_bridge=bridge_mode == "simulator")
    local.prepare()
    problem = local.redis_problem()
    if problem is not None:
        raise click.ClickException(problem)
    click.echo(local.banner())
    status = local.run()
    with contextlib.suppress(BrokenPipeError, OSError):
        click.echo("zapa-bridge local stack stopped"
                   + (f" (a process failed: exit {status})" if status else ""))
    if status:
        sys.exit(status)


# Each field of a message, as the flag that sets it (errors name the flag).
SEND_FLAGS = {"to": "--to", "text": "--text", "type": "--type", "session": "--session",
              "from_number": "--from-number", "priority": "--priority",
              "media_url": "--media-url", "media_base64": "--media-file", "caption": "--caption",
              "file_name": "--file-name", "latitude": "--latitude", "longitude": "--longitude",
              "name": "--name", "address": "--address", "contact_name": "--contact-name",
              "contact_number": "--contact-number", "idempotency_key": "--idempotency-key",
              "ttl": "--ttl"}


@main.command()
@click.option("--to", required=True, help="Recipient, digits in international form.")
@click.option("--text", help="Text of a text message.")
@click.option("--type", "kind", type=click.Choice([str(kind) for kind in MessageType]),
              default="text", show_default=True)
@click.option("--session", help="Bridge session to send through.")
@click.option("--from-number", help="Send through the session with this phone number.")
@click.option("--priority", type=click.Choice([str(level) for level in Priority]),
              default="default", show_default=True)
@click.option("--media-url", help="Media to send, by URL (image, video, audio, document).")
@click.option("--media-file", type=click.File("rb"),
              help="Media to send, from a file (sent base64-encoded).")
@click.option("--caption", help="Caption of a media message.")
@click.option("--file-name", help="File name of a document.")
@click.option("--latitude", type=float, help="Location: latitude.")
@click.option("--longitude", type=float, help="Location: longitude.")
@click.option("--name", help="Location: the place's name.")
@click.option("--address", help="Location: its address.")
@click.option("--contact-name", help="Contact card: the name.")
@click.option("--contact-number", help="Contact card: the number.")
@click.option("--idempotency-key", help="Sends with the same key queue one message.")
@click.option("--ttl", type=float, help="Seconds after which an unsent message expires.")
def send(kind: str, media_file: BinaryIO | None, **fields: Any) -> None:
    """Queue one message and print its id."""
    settings = _settings()
    from workers.tasks import send_message

    fields = {key: value for key, value in fields.items() if value is not None}
    if media_file is not None:
        fields["media_base64"] = base64.b64encode(media_file.read()).decode("ascii")
    if "session" in fields:
        _check_session(settings, fields["session"])
    try:
        result = send_message.delay(type=kind, **fields)
    except InvalidMessage as exc:
        flag = SEND_FLAGS.get(exc.field, exc.field)
        raise click.ClickException(f"{flag}: {exc.reason}") from None
    except QueueUnavailable as exc:
        raise click.ClickException(
            f"cannot reach Redis at REDIS_URL={redact_url(settings.redis_url)}: {exc}") from None
    except ZapaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.id)


def _check_session(settings: Settings, session: str) -> None:
    """Refuse a session the bridge says it does not have (unless ZAPA_SESSIONS names it:
    reconciliation creates it); warn when the bridge cannot say and zapa-bridge has never
    seen the session."""
    from contextlib import closing

    from zapa_bridge.bridge.client import BridgeClient

    problem = session_id_problem(session)
    if problem is not None:
        raise click.ClickException(f"--session: {problem}; nothing queued")
    with closing(BridgeClient.from_settings(settings)) as client:
        try:
            on_bridge = sorted(info.id for info in client.list_sessions())
        except ZapaError:
            on_bridge = None
    if on_bridge is not None and session not in on_bridge:
        if session in settings.managed_sessions:
            click.echo(f"warning: the bridge has no session {session!r} yet; it is in "
                       "ZAPA_SESSIONS, so reconciliation creates it and the message waits "
                       "held until it is connected", err=True)
            return
        known = ", ".join(on_bridge) or "none"
        raise click.ClickException(f"--session: the bridge has no session {session!r} "
                                   f"(it has: {known}); nothing queued")
    if on_bridge is None and _services().sessions.get(session) is None:
        click.echo(f"warning: the bridge at ZAPW_URL did not answer, and zapa-bridge has "
                   f"never seen session {session!r}; queued anyway", err=True)


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
@click.confirmation_option("--yes", prompt="Delete every outbound dead letter and its record?",
                           help="Delete without asking.")
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
@click.confirmation_option("--yes", prompt="Delete every inbound dead letter?",
                           help="Delete without asking.")
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
    redis_ok = _check_redis(settings)
    bridge_ok = _check_bridge(settings)
    click.echo("\nzapw's environment, to post its events here:")
    for line in zapw_environment(settings):
        click.echo(f"  {line}")
    if not (redis_ok and bridge_ok):
        sys.exit(1)


def _check_redis(settings: Settings) -> bool:
    """The master (and with Sentinel, how many Sentinels answer), its replicas, and the
    durability setting, which cannot hold without as many online replicas."""
    import redis

    from zapa_bridge.store.topology import topology

    shown = redact_url(settings.redis_url)
    target = settings.redis
    try:
        found = topology(target)
    except redis.RedisError as exc:
        via = f" (Sentinel master {target.master_name!r})" if target.sentinel else ""
        click.echo(f"redis {shown}{via}: NOT REACHABLE ({type(exc).__name__}: {exc})")
        return False
    if found.sentinels_answering is not None:
        sentinels = len(target.sentinel.sentinels) if target.sentinel else 0
        click.echo(f"redis {shown}: ok, Sentinel master {target.master_name!r} at "
                   f"{found.master} ({found.sentinels_answering} of {sentinels} Sentinels "
                   "answering)")
    else:
        click.echo(f"redis {shown}: ok, {found.role} at {found.master}")
    online = [replica for replica in found.replicas if replica.state == "online"]
    click.echo(f"redis replicas: {counted(len(found.replicas), 'replica')}"
               + "".join(f"\n  {replica.address} {replica.state}"
                         + (f", lag {replica.lag} s" if replica.lag is not None else "")
                         for replica in found.replicas))
    wanted = settings.redis_wait_replicas
    if not wanted:
        click.echo("redis durability: accepted sends and webhooks are not waited on a "
                   "replica (ZAPA_REDIS_WAIT_REPLICAS=0)")
        return True
    click.echo(f"redis durability: each accepted send and webhook waits for "
               f"{counted(wanted, 'replica')} (ZAPA_REDIS_WAIT_REPLICAS), at most "
               f"{settings.redis_wait_timeout:g} s")
    if len(online) < wanted:
        click.echo(f"redis durability: NOT MET: {len(online)} online, so every send is "
                   "refused and every webhook spooled")
        return False
    return True


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
    click.echo(f"bridge GET /sessions: ok, {counted(len(sessions), 'session')} ({key})")
    return True


SIMULATOR_URL = click.option(
    "--simulator-url", envvar="ZAPW_URL", default="http://127.0.0.1:3000",
    help="The simulator's address (default: $ZAPW_URL, else http://127.0.0.1:3000).")


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
@SIMULATOR_URL
def simulate_inbound(session: str, sender: str, text: str | None, kind: str,
                     caption: str | None, file_name: str | None, group: str | None,
                     simulator_url: str) -> None:
    """Make a WhatsApp user send a message to a session; zapw posts it to zapa-bridge."""
    body = {key: value for key, value in {
        "type": kind, "sender": sender, "text": text, "caption": caption,
        "file_name": file_name, "group": group}.items() if value is not None}
    _echo_json(_control(simulator_url, "POST",
                        f"/_sim/sessions/{_session_segment(session, '--session')}/inbound", body))


@simulate.command(name="disconnect")
@click.argument("session")
@SIMULATOR_URL
def simulate_disconnect(session: str, simulator_url: str) -> None:
    """Drop a session, as a phone going offline would."""
    _echo_json(_control(simulator_url, "POST",
                        f"/_sim/sessions/{_session_segment(session)}/disconnect", {}))


@simulate.command(name="connect")
@click.argument("session")
@SIMULATOR_URL
def simulate_connect(session: str, simulator_url: str) -> None:
    """Bring a session back online."""
    _echo_json(_control(simulator_url, "POST",
                        f"/_sim/sessions/{_session_segment(session)}/connect", {}))


@simulate.command(name="sends")
@SIMULATOR_URL
def simulate_sends(simulator_url: str) -> None:
    """List what the simulator accepted to send."""
    _echo_json(_control(simulator_url, "GET", "/_sim/sends", None))


@simulate.command(name="restart")
@click.option("--downtime", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds it refuses connections while it restores its sessions.")
@click.option("--drop-sessions", is_flag=True,
              help="Lose the WhatsApp credentials too: no session comes back.")
@SIMULATOR_URL
def simulate_restart(downtime: float, drop_sessions: bool, simulator_url: str) -> None:
    """Restart the simulated zapw: sessions never scanned are gone, the others reconnect."""
    _echo_json(_control(simulator_url, "POST", "/_sim/restart",
                        {"downtime": downtime, "drop_sessions": drop_sessions}))


def _session_segment(session: str, hint: str = "SESSION") -> str:
    """The session of a simulate command, as a path segment of the simulator's control API."""
    problem = session_id_problem(session)
    if problem is not None:
        raise click.BadParameter(problem, param_hint=hint)
    return path_segment(session)


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
