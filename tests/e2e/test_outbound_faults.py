"""Outbound messages through a misbehaving bridge: failing sends, a bridge that is down, a
session that drops mid-burst. Every message ends sent, and none is sent twice."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.e2e.stack import S, Stack, statuses
from tests.helpers import recipient, wait_until
from tests.processes import Worker
from workers.tasks import send_message, services

pytestmark = pytest.mark.slow

_recipients = itertools.count()


def send_all(texts: list[str], session: str) -> list[str]:
    """Each to a recipient of its own, so no message waits behind another (ordering within
    one conversation is the chaos suite's subject)."""
    return [send_message.delay(to=recipient(next(_recipients)), text=text,
                               session=session).id for text in texts]


# With the suite's ZAPA_MAX_RETRIES=5 (six attempts), 200 * 0.3**6: one run in seven would
# end with a dead letter; with twenty retries, one in a few hundred million.
@pytest.mark.worker_env(ZAPA_MAX_RETRIES="20")
def test_200_sends_through_a_bridge_failing_30_percent_all_end_sent_once(e2e: Stack):
    # No receipts, as zapw's mock mode: they would triple the webhook traffic.
    e2e.sim.configure(auto_status=(), flavour="mock")
    e2e.sim.set_faults(failure_rate=0.3, failure_status=500,
                       failure_error="Failed to send message")
    texts = [f"bulk {i:03d}" for i in range(200)]
    ids = send_all(texts, "A")

    records = e2e.wait_all(ids, {S.SENT}, timeout=60)
    assert e2e.sent_texts("A") == dict.fromkeys(texts, 1)
    assert {r.bridge_message_id for r in records} == {s.message_id for s in e2e.sim.sends()}
    assert sum(r.attempts for r in records) > 200  # the faults were really met


@pytest.mark.worker_env(ZAPA_MAX_RETRIES="60")
def test_messages_queued_while_the_bridge_refuses_connections_are_sent_after(e2e: Stack):
    e2e.sim.configure(auto_status=(), flavour="mock")
    e2e.sim.refuse_connections(10)
    texts = [f"while down {i:02d}" for i in range(20)]
    ids = send_all(texts, "B")

    records = e2e.wait_all(ids, {S.SENT}, timeout=40)
    assert e2e.sent_texts("B") == dict.fromkeys(texts, 1)
    assert e2e.sim.sends("A") == []
    assert all(r.attempts > 1 for r in records)  # each met the outage
    assert min(send.at for send in e2e.sim.sends()) - min(r.created for r in records) > 9


def test_a_session_dropped_mid_burst_holds_its_messages_while_the_other_flows(e2e: Stack):
    e2e.sim.configure(auto_status=(), flavour="mock")
    before = {s: send_all([f"{s} before {i}" for i in range(5)], s) for s in ("A", "B")}
    e2e.sim.disconnect("A")
    during_texts = {s: [f"{s} during {i}" for i in range(10)] for s in ("A", "B")}
    during = {s: send_all(during_texts[s], s) for s in ("A", "B")}

    e2e.wait_session("A", "disconnected")
    e2e.wait_all(before["B"] + during["B"], {S.SENT})
    e2e.wait_all(during["A"], {S.HELD})
    # Sent before the drop, or held if the drop came first.
    early = e2e.wait_all(before["A"], {S.SENT, S.HELD})
    assert not any(text in e2e.sent_texts("A") for text in during_texts["A"])
    assert sorted(services().held.ids("A")) == sorted(
        during["A"] + [r.id for r in early if r.status is S.HELD])

    e2e.sim.connect("A")
    e2e.wait_all(before["A"] + during["A"], {S.SENT})
    for session in ("A", "B"):
        texts = [f"{session} before {i}" for i in range(5)] + during_texts[session]
        assert e2e.sent_texts(session) == dict.fromkeys(texts, 1)
    assert services().held.count("A") == 0


def test_a_send_refused_while_its_session_reconnects_is_sent_after_the_reconnect(
        e2e: Stack, start_worker: Callable[..., Worker]):
    """zapw answers "not connected" while the session is coming back; its session.connected
    (which releases held messages) is handled before the worker hears that answer. The
    message must not wait in `held` for the next reconcile."""
    e2e.sim.configure(auto_status=(), flavour="mock")
    with BridgeGate(e2e.sim.url) as gate:
        e2e.worker.stop()
        # Room for the answer kept back (and a visibility timeout one such attempt fits in).
        start_worker(ZAPW_URL=gate.url, ZAPW_TIMEOUT="7", ZAPA_VISIBILITY_TIMEOUT="12")
        e2e.sim.set_faults(not_connected=["A"])
        gate.hold_next_send()
        (message_id,) = send_all(["in flight"], "A")
        assert gate.wait_held() == 400  # zapw has refused; the worker does not know yet

        e2e.sim.clear_faults()
        connected = e2e.sim.connect("A")
        wait_until(lambda: services().sessions.get("A").event_at == connected["timestamp"],
                   what="session.connected handled")
        gate.release()
        record = e2e.wait_status(message_id, S.SENT)

    assert e2e.sent_texts("A") == {"in flight": 1}
    assert statuses(record)[-5:] == ["sending", "held", "queued", "sending", "sent"]


class BridgeGate:
    """A proxy in front of the simulated zapw that can keep one send's answer back: zapw
    has decided, and the worker hears it only when the test says so."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._armed = self._caught = False
        self._caught_event, self._release = threading.Event(), threading.Event()
        self._held_status: int | None = None
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> BridgeGate:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()

    def hold_next_send(self) -> None:
        with self._lock:
            self._armed = True

    def wait_held(self, timeout: float = 10.0) -> int | None:
        """The status zapw answered the held send with, once it has answered."""
        if not self._caught_event.wait(timeout):
            raise AssertionError(f"no send reached the bridge within {timeout} s")
        return self._held_status

    def release(self) -> None:
        self._release.set()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "authorization", "x-api-key")}
        with requests.request(request.method, f"{self.target}{request.full_path}",
                              data=request.get_data(), headers=headers, timeout=10) as answer:
            response = Response(answer.content, status=answer.status_code,
                                content_type=answer.headers.get("Content-Type"))
        is_send = request.method == "POST" and request.path.endswith("/messages")
        with self._lock:
            hold = is_send and self._armed and not self._caught
            if hold:
                self._caught, self._held_status = True, answer.status_code
        if hold:
            self._caught_event.set()
            self._release.wait(timeout=10)
        return response(environ, start_response)
