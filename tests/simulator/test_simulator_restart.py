"""A simulated zapw restart looks like the real one (the contract's "Restarts and shutdown"):
connections refused while it restores, only sessions with WhatsApp credentials back, as
`disconnected` then `connecting` then `connected`, uptime and the event ring started
afresh, and no `session.disconnected` for anything, neither then nor when it stops."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from tests.helpers import wait_until
from tests.simulator.support import TO, Receiver, Simulators, connected, holds
from zapa_bridge.cli import main
from zapa_bridge.simulator import Simulator


def control(sim: Simulator, body: Any) -> requests.Response:
    return requests.post(f"{sim.url}/_sim/restart", json=body, timeout=5)


def answers(sim: Simulator) -> bool:
    """Whether the simulator takes a connection now."""
    try:
        requests.get(f"{sim.url}/health", timeout=1)
    except requests.ConnectionError:
        return False
    return True


def status_of(sim: Simulator, session_id: str) -> int | str:
    response = requests.get(f"{sim.url}/sessions/{session_id}", timeout=5)
    return response.json()["data"]["status"] if response.status_code == 200 \
        else response.status_code


def send(sim: Simulator, session_id: str) -> requests.Response:
    return requests.post(f"{sim.url}/sessions/{session_id}/messages", timeout=5,
                         json={"to": TO, "type": "text", "text": "hi"})


def test_a_restart_answers_then_refuses_connections_and_listens_again_on_its_port(sim):
    connected(sim)
    port = sim.port
    response = control(sim, {"downtime": 0.5})
    assert (response.status_code, response.json()) == (
        202, {"restarting_for": 0.5, "drop_sessions": False})
    wait_until(lambda: not answers(sim), timeout=2, what="connections refused")
    wait_until(lambda: answers(sim), timeout=5, what="listening again")
    assert sim.port == port


def test_sessions_never_scanned_are_gone_after_a_restart_and_sends_to_them_are_404(
        simulators):
    sim = simulators.start(connect_delay=None)
    connected(sim, "scanned")
    requests.post(f"{sim.url}/sessions", json={"sessionId": "waiting"}, timeout=5)
    sim.restart(downtime=0.2)
    assert [s["id"] for s in requests.get(f"{sim.url}/sessions", timeout=5).json()["data"]] \
        == ["scanned"]
    response = send(sim, "waiting")
    assert (response.status_code, response.json()) == (
        404, {"status": "error", "error": "Session waiting not found"})


def test_a_restored_session_comes_back_disconnected_then_connecting_then_connected(
        simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, restore_delay=0.3, phone="5511900001111")
    connected(sim)
    before = requests.get(f"{sim.url}/sessions/s1", timeout=5).json()["data"]
    receiver.wait_for("session.connected")
    sim.restart(downtime=0.2)  # returns once listening again
    seen: list[int | str] = []

    def connected_again() -> bool:
        status = status_of(sim, "s1")
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == "connected"

    wait_until(connected_again, timeout=5, interval=0.02, what="s1 connected again")
    assert seen == ["disconnected", "connecting", "connected"]
    again = receiver.wait_for("session.connected", count=2)[1].json
    assert (again["sessionId"], again["data"]) == (
        "s1", {"phoneNumber": "5511900001111", "name": "Test User"})
    after = requests.get(f"{sim.url}/sessions/s1", timeout=5).json()["data"]
    assert after["createdAt"] == before["createdAt"]
    assert after["connectedAt"] > before["connectedAt"]
    assert send(sim, "s1").status_code == 200


def test_a_restart_posts_no_session_disconnected(sim, receiver):
    connected(sim)
    sim.add_session("waiting", connected=False)
    sim.restart(downtime=0.1)
    receiver.wait_for("session.connected", count=2)  # s1 back: the restart is over
    assert receiver.received("session.disconnected") == []
    assert [e["eventType"] for e in sim.events()] == ["session.connected"]


@pytest.mark.parametrize("switched", [False, True], ids=["from-start", "switched-at-run-time"])
def test_in_the_mock_flavour_a_restart_forgets_every_session(simulators, switched):
    sim = simulators.start(flavour="real" if switched else "mock")
    connected(sim)
    if switched:
        assert sim.configure(flavour="mock").flavour == "mock"
    sim.restart(downtime=0.1)
    assert requests.get(f"{sim.url}/sessions", timeout=5).json()["data"] == []
    assert send(sim, "s1").json() == {"status": "error", "error": "Session s1 not found"}


def test_a_restart_resets_uptime_and_starts_the_event_ring_afresh(sim):
    connected(sim)
    sim.inject_inbound("s1", text="before")
    wait_until(lambda: sim.bridge.health()["uptime"] > 0.5, timeout=5, what="uptime grows")
    before = requests.get(f"{sim.url}/health", timeout=5).json()["uptime"]
    sim.restart(downtime=0.1)
    assert requests.get(f"{sim.url}/health", timeout=5).json()["uptime"] < before
    wait_until(lambda: status_of(sim, "s1") == "connected", timeout=5, what="s1 back")
    events = requests.get(f"{sim.url}/events", timeout=5).json()["data"]
    assert [(e["id"], e["eventType"]) for e in events] == [("evt_1", "session.connected")]


def test_a_restart_ends_the_old_processs_webhook_retries(simulators, receiver):
    sim = simulators.start(webhook_url=receiver.url, webhook_retry_delay=0.4)
    receiver.default_status = 500
    connected(sim)
    receiver.wait_for("session.connected")
    sim.restart(downtime=0, drop_sessions=True)
    holds(lambda: len(receiver.received()) == 1, 0.6, what="a single attempt")


def test_stopping_ends_the_sessions_without_posting_session_disconnected(simulators,
                                                                       receiver):
    """What SIGTERM/SIGINT of `python -m zapa_bridge.simulator` runs; the receiver outlives
    the simulator here, so a webhook posted on the way out would be seen."""
    sim = simulators.start(webhook_url=receiver.url)
    connected(sim)
    receiver.wait_for("session.connected")
    sim.stop()
    holds(lambda: [p.event_type for p in receiver.received()] == ["session.connected"], 0.3,
          what="nothing posted on stop")
    assert not answers(sim)


def test_a_restart_without_downtime_keeps_listening(simulators):
    sim = simulators.start(restore_delay=0.5)
    connected(sim)
    response = control(sim, {"downtime": 0})
    assert response.status_code == 202
    assert status_of(sim, "s1") in ("disconnected", "connecting")  # restored, not yet back
    wait_until(lambda: status_of(sim, "s1") == "connected", timeout=5, what="s1 back")


def test_a_restart_can_drop_every_session_as_if_credentials_were_lost(sim):
    connected(sim)
    response = control(sim, {"downtime": 0, "drop_sessions": True})
    assert response.json() == {"restarting_for": 0, "drop_sessions": True}
    assert sim.bridge.list_sessions() == []


@pytest.mark.parametrize(("body", "error"), [
    ({"downtime": -1}, "downtime: must be a number of seconds >= 0"),
    ({"downtime": "1"}, "downtime: must be a number of seconds >= 0"),
    ({"drop_sessions": "yes"}, "drop_sessions: must be true or false"),
])
def test_a_bad_restart_body_is_400_and_restarts_nothing(sim, body, error):
    connected(sim)
    response = control(sim, body)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert status_of(sim, "s1") == "connected"


def test_the_cli_restarts_the_simulator(simulators: Simulators, receiver: Receiver):
    sim = simulators.start(webhook_url=receiver.url, connect_delay=None)
    connected(sim)
    sim.add_session("waiting", connected=False)
    result = CliRunner().invoke(main, ["simulate", "restart", "--downtime", "0.3",
                                       "--simulator-url", sim.url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"restarting_for": 0.3, "drop_sessions": False}
    wait_until(lambda: not answers(sim), timeout=2, what="connections refused")
    wait_until(lambda: answers(sim) and status_of(sim, "s1") == "connected", timeout=5,
               what="s1 back")
    assert status_of(sim, "waiting") == 404
