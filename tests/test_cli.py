"""The `zapa-bridge` command against the suite's real Redis, a real worker and the zapw stub."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from importlib.metadata import version

import pytest
from click.testing import CliRunner

from tests.helpers import wait_until
from workers.tasks import send_message, services
from zapa_bridge.cli import main
from zapa_bridge.devtools.embedded_redis import free_port
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.queues import Queue
from zapa_bridge.simulator import Simulator, SimulatorConfig

TO = "5511988887777"
VERSION = version("zapa-bridge")


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str, **env: str):
        return runner.invoke(main, list(args), env=env or None, catch_exceptions=False)

    return invoke


def cli_input(answer: str, *args: str):
    """The command with `answer` typed at its prompt."""
    return CliRunner().invoke(main, list(args), input=answer, catch_exceptions=False)


def record_of(message_id: str):
    return services().store.get(message_id)


def wait_status(message_id: str, status: MessageStatus, timeout: float = 20.0):
    return wait_until(lambda: (r := record_of(message_id)) is not None and r.status == status
                      and r, timeout=timeout, what=f"{message_id} {status}")


@pytest.fixture
def dead_letter(start_worker, zapw) -> str:
    """A real dead letter: sent through a session the bridge does not have (404)."""
    start_worker()
    message_id = send_message.delay(to=TO, text="hi", session="ghost").id
    wait_status(message_id, MessageStatus.FAILED)
    return message_id


def test_send_prints_the_id_of_a_message_recorded_as_queued(cli, redis_db):
    result = cli("send", "--to", TO, "--text", "hi", "--session", "s1")
    assert result.exit_code == 0, result.output
    message_id = result.stdout.strip()
    record = record_of(message_id)
    assert record is not None
    assert (record.status, record.to, record.session) == (MessageStatus.QUEUED, TO, "s1")
    assert record.message == {"to": TO, "type": "text", "text": "hi", "session": "s1",
                              "priority": "default"}
    assert redis_db.llen(Queue.SEND_DEFAULT) == 1


def test_send_with_a_bad_number_fails_naming_the_field_and_queues_nothing(cli, redis_db):
    result = cli("send", "--to", "55-11-9888", "--text", "hi", "--session", "s1")
    assert result.exit_code != 0
    assert "Error: --to: must be digits only" in result.output
    assert list(redis_db.scan_iter("zapa:msg:*")) == []
    assert [redis_db.llen(queue) for queue in Queue] == [0] * len(Queue)


def test_status_prints_the_record_with_its_status_and_history_as_json(cli, redis_db):
    message_id = cli("send", "--to", TO, "--text", "hi", "--session", "s1").stdout.strip()
    result = cli("status", message_id)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["id"], shown["status"], shown["to"]) == (message_id, "queued", TO)
    assert [(entry["status"], entry["note"]) for entry in shown["history"]] == [
        ("queued", "queued")]


def test_status_of_an_unknown_message_exits_non_zero(cli, redis_db):
    result = cli("status", "unknown")
    assert result.exit_code == 1
    assert "Error: no message unknown" in result.output


@pytest.mark.slow
def test_dead_letters_list_shows_the_failed_message_with_its_reason(cli, dead_letter):
    result = cli("dead-letters", "list")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [(item["id"], item["status"]) for item in listed] == [(dead_letter, "failed")]
    assert listed[0]["reason"] == "SessionNotFound: Session ghost not found"


@pytest.mark.slow
def test_dead_letters_replay_queues_it_again_and_a_worker_sends_it(cli, dead_letter, zapw):
    zapw.add_session("ghost")
    result = cli("dead-letters", "replay", dead_letter)
    assert result.exit_code == 0, result.output
    assert result.output.split() == [dead_letter, "queued"]
    record = wait_status(dead_letter, MessageStatus.SENT)
    assert [send.body["to"] for send in zapw.sent_to("ghost")] == [TO]
    assert record.bridge_message_id == zapw.sent_to("ghost")[0].message_id
    assert json.loads(cli("dead-letters", "list").output) == []


def test_dead_letters_replay_of_a_message_that_is_not_dead_exits_non_zero(cli, redis_db):
    message_id = cli("send", "--to", TO, "--text", "hi", "--session", "s1").stdout.strip()
    result = cli("dead-letters", "replay", message_id)
    assert result.exit_code == 1
    assert "is not a dead letter" in result.output
    assert record_of(message_id).status == MessageStatus.QUEUED


@pytest.mark.slow
def test_dead_letters_purge_deletes_the_dead_letter_and_its_record(cli, dead_letter):
    kept = cli_input("n\n", "dead-letters", "purge")
    assert kept.exit_code != 0 and "Aborted" in kept.output
    assert record_of(dead_letter) is not None
    result = cli("dead-letters", "purge", "--yes")
    assert (result.exit_code, result.output) == (0, "purged 1\n")
    assert record_of(dead_letter) is None
    assert json.loads(cli("dead-letters", "list").output) == []


def output_line(output: str, start: str) -> str:
    """The first line of `output` that starts with `start`."""
    return next(line for line in output.splitlines() if line.startswith(start))


def test_check_exits_1_when_the_bridge_is_unreachable(cli, redis_db):
    result = cli("check", ZAPW_URL=f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 1
    assert "configuration: ok" in result.output
    assert ": ok, master at 127.0.0.1:" in output_line(result.output, "redis redis://")
    assert "NOT REACHABLE" in output_line(result.output, "bridge ")


def test_check_exits_0_when_redis_and_the_bridge_answer(cli, redis_db, zapw):
    result = cli("check", ZAPW_URL=zapw.url)
    assert result.exit_code == 0, result.output
    assert output_line(result.output, "bridge ") == f"bridge {zapw.url}: ok, up 12 s"
    assert output_line(result.output, "redis replicas:") == "redis replicas: 0 replicas"


def test_check_exits_1_when_redis_is_unreachable(cli, zapw):
    result = cli("check", ZAPW_URL=zapw.url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert result.exit_code == 1
    assert "NOT REACHABLE" in output_line(result.output, "redis ")


def test_a_bad_setting_makes_every_command_fail_naming_the_variable(cli, redis_db):
    result = cli("check", ZAPW_URL="not a url")
    assert result.exit_code == 1
    assert "ZAPW_URL" in result.output
    assert "configuration: ok" not in result.output


def test_check_prints_the_exact_zapw_environment_lines(cli, redis_db, zapw):
    result = cli("check", ZAPW_URL=zapw.url, ZAPA_PUBLIC_URL="https://bridge.example.com/",
                 ZAPA_WEBHOOK_TOKEN="tok123", ZAPW_API_KEY="key456")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    tail = lines[lines.index("zapw's environment, to post its events here:") + 1:]
    assert tail == [
        "  WEBHOOK_URL=https://bridge.example.com/api/v1/webhooks/whatsapp?token=tok123",
        "  ENABLE_WEBHOOK=true",
        "  API_KEY=key456",
    ]


SIM_KEY = "sim-key-4b1e"


@pytest.fixture
def keyed_sim():
    """zapw with an API_KEY: /health answers anyone, every other route wants the key."""
    with Simulator(SimulatorConfig(api_key=SIM_KEY, connect_delay=None)) as sim:
        yield sim


def bridge_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("bridge ")]


def test_check_fails_naming_zapw_api_key_when_the_bridge_refuses_it(cli, redis_db, keyed_sim):
    result = cli("check", ZAPW_URL=keyed_sim.url, ZAPW_API_KEY="not-the-key-9c2d")
    assert result.exit_code == 1
    health, sessions = bridge_lines(result.output)
    assert health.startswith(f"bridge {keyed_sim.url}: ok, up ")
    assert sessions == ("bridge GET /sessions: REFUSED (401): ZAPW_API_KEY does not match "
                        "zapw's API_KEY")
    assert "not-the-key-9c2d" not in sessions


def test_check_fails_naming_zapw_api_key_when_it_is_unset_and_zapw_wants_one(cli, redis_db,
                                                                            keyed_sim):
    result = cli("check", ZAPW_URL=keyed_sim.url, ZAPW_API_KEY="")
    assert result.exit_code == 1
    assert bridge_lines(result.output)[1] == ("bridge GET /sessions: REFUSED (401): "
                                              "ZAPW_API_KEY is not set, and zapw requires a key")


def test_check_passes_when_the_bridge_accepts_zapw_api_key(cli, redis_db, keyed_sim):
    keyed_sim.add_session("s1")
    result = cli("check", ZAPW_URL=keyed_sim.url, ZAPW_API_KEY=SIM_KEY)
    assert result.exit_code == 0, result.output
    assert bridge_lines(result.output)[1] == ("bridge GET /sessions: ok, 1 session "
                                              "(ZAPW_API_KEY accepted)")


def test_help_version_and_python_dash_m():
    runner = CliRunner()
    assert runner.invoke(main, ["-h"]).output.startswith("Usage: zapa-bridge")
    assert runner.invoke(main, ["send", "-h"]).exit_code == 0
    version = runner.invoke(main, ["--version"])
    assert (version.exit_code, version.output) == (0, f"zapa-bridge, version {VERSION}\n")
    done = subprocess.run([sys.executable, "-m", "zapa_bridge", "--version"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == f"zapa-bridge, version {VERSION}\n"


def test_send_lists_the_choices_of_type_and_priority(cli, redis_db):
    result = CliRunner().invoke(main, ["send", "--to", TO, "--type", "fax"])
    assert result.exit_code == 2
    assert "'fax' is not one of 'text', 'image'" in result.output
    assert list(redis_db.scan_iter("zapa:msg:*")) == []


def test_send_errors_name_the_flag_not_the_field(cli, redis_db):
    result = cli("send", "--to", TO, "--text", "hi", "--from-number", "not-a-number")
    assert result.exit_code != 0
    assert "Error: --from-number:" in result.output
    assert "from_number" not in result.output
    result = cli("send", "--to", TO, "--type", "location", "--latitude", "91",
                 "--longitude", "0", "--session", "s1")
    assert "Error: --latitude:" in result.output


def test_send_takes_a_location_a_contact_and_a_media_file(cli, redis_db, tmp_path):
    location = cli("send", "--to", TO, "--type", "location", "--latitude", "-23.5",
                   "--longitude", "-46.6", "--name", "Paulista", "--session", "s1")
    assert location.exit_code == 0, location.output
    assert record_of(location.stdout.strip()).message["latitude"] == -23.5
    contact = cli("send", "--to", TO, "--type", "contact", "--contact-name", "Ana",
                  "--contact-number", "5511977776666", "--session", "s1")
    assert record_of(contact.stdout.strip()).message["contact_name"] == "Ana"
    picture = tmp_path / "dot.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
    media = cli("send", "--to", TO, "--type", "image", "--media-file", str(picture),
                "--caption", "a dot", "--session", "s1")
    assert media.exit_code == 0, media.output
    stored = record_of(media.stdout.strip()).message
    assert base64.b64decode(stored["media_base64"]) == picture.read_bytes()


def test_send_through_a_session_the_bridge_lacks_fails_and_queues_nothing(cli, redis_db, zapw):
    zapw.add_session("s1")
    result = cli("send", "--to", TO, "--text", "hi", "--session", "nosuch", ZAPW_URL=zapw.url)
    assert result.exit_code == 1
    assert "--session: the bridge has no session 'nosuch' (it has: s1)" in result.output
    assert list(redis_db.scan_iter("zapa:msg:*")) == []
    managed = cli("send", "--to", TO, "--text", "hi", "--session", "later",
                  ZAPW_URL=zapw.url, ZAPA_SESSIONS="later")
    assert managed.exit_code == 0
    assert "in ZAPA_SESSIONS" in managed.stderr
    assert record_of(managed.stdout.strip()).session == "later"


def test_send_warns_when_the_bridge_is_silent_about_an_unknown_session(cli, redis_db):
    result = cli("send", "--to", TO, "--text", "hi", "--session", "unseen",
                 ZAPW_URL=f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 0
    assert "never seen session 'unseen'; queued anyway" in result.stderr
    assert record_of(result.stdout.strip()).status == MessageStatus.QUEUED


def test_send_names_redis_url_when_redis_is_unreachable():
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = subprocess.run([sys.executable, "-m", "zapa_bridge", "send", "--to", TO, "--text",
                           "hi"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert "cannot reach Redis at REDIS_URL=redis://127.0.0.1:" in done.stderr


@pytest.mark.parametrize("command", ["inbound", "connect", "disconnect", "sends", "restart"])
def test_simulate_help_says_where_the_simulator_is_looked_for(command):
    shown = CliRunner().invoke(main, ["simulate", command, "--help"]).output
    assert "$ZAPW_URL, else http://127.0.0.1:3000" in " ".join(shown.split())
    assert "[default: http://127.0.0.1:3000]" not in shown
