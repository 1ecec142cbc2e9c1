"""What a session id may be (`session_ids`), and the entries that refuse the rest before a
URL is built of it: the CLI here; the send path, the admin API, the bridge client and the
settings in their own tests."""

from __future__ import annotations

import socket

import pytest
import requests
from click.testing import CliRunner

from zapa_bridge.cli import main
from zapa_bridge.session_ids import MAX_SESSION_ID_CHARS, path_segment, session_id_problem

ACCEPTED = ["s1", "default", "7b0c1a52-2f3e-4d8e-9b1a-0c6f2d9e8a11", "team a", "a.b", "...",
            "%2E%2E", "%2F", "ação", "x?y#z&", "x" * MAX_SESSION_ID_CHARS]
REFUSED = [".", "..", "/", "a/b", "../messages", "a\\b", "", "   ",
           "x" * (MAX_SESSION_ID_CHARS + 1), "a\nb", "a\x1bb", "\ud800", None, 12, ["s1"]]


@pytest.mark.parametrize("value", ACCEPTED)
def test_an_accepted_id_has_no_problem(value):
    assert session_id_problem(value) is None


@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_a_refused_id_is_told_why(value):
    problem = session_id_problem(value)
    assert isinstance(problem, str) and problem.startswith("must ")


def test_dot_segments_are_refused_because_requests_would_change_the_path():
    """The reason for the rule: `requests` drops `.` and climbs `..`, encoded or not."""
    def sent_path(session_id: str) -> str:
        url = f"http://zapw.test/sessions/{session_id}/messages"
        return str(requests.Request("POST", url).prepare().path_url)

    assert (sent_path("."), sent_path("..")) == ("/sessions/messages", "/messages")
    assert session_id_problem(".") is not None and session_id_problem("..") is not None


@pytest.mark.parametrize("value", ACCEPTED)
def test_every_accepted_id_stays_one_segment_of_the_path_requests_sends(value):
    segment = path_segment(value)
    url = f"http://zapw.test/sessions/{segment}/messages"

    assert requests.Request("POST", url).prepare().path_url == f"/sessions/{segment}/messages"
    assert "/" not in segment


def test_path_segment_percent_encodes_everything_but_unreserved_characters():
    assert path_segment("team a/b?%") == "team%20a%2Fb%3F%25"
    assert path_segment("ação") == "a%C3%A7%C3%A3o"


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_path_segment_refuses_what_no_encoding_makes_a_segment(value):
    with pytest.raises(ValueError, match="cannot be a URL path segment"):
        path_segment(value)


# -- the command line ----------------------------------------------------------------------

def closed_port_url() -> str:
    """A URL nothing answers at: a CLI call that reached it would fail another way."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("session", ["..", ".", "a/b"])
def test_cli_send_refuses_a_bad_session_naming_the_flag_and_queues_nothing(
        redis_db, monkeypatch, session):
    monkeypatch.setenv("ZAPW_URL", closed_port_url())
    result = CliRunner().invoke(main, ["send", "--to", "5511988887777", "--text", "hi",
                                       "--session", session])

    assert result.exit_code == 1
    assert "--session: must not" in result.output
    assert list(redis_db.scan_iter("zapa*")) == []


@pytest.mark.parametrize("command", [["simulate", "connect", ".."],
                                     ["simulate", "disconnect", "."],
                                     ["simulate", "inbound", "--session", "..",
                                      "--from", "5511988887777", "--text", "hi"]])
def test_cli_simulate_refuses_a_dot_session_before_calling_the_simulator(command):
    result = CliRunner().invoke(main, [*command, "--simulator-url", closed_port_url()])

    assert result.exit_code == 2
    assert "must not be '.' or '..'" in result.output
