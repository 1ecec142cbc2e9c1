"""Task events (Flower, `celery events`) from a real worker: our hand-built messages show up
by name, and no event carries an argument in clear, retries included."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.test_events import event
from workers.celery_app import app
from workers.tasks import send_message, services
from zapa_bridge.outbound.status_store import MessageStatus

TO = "5511988887777"
SECRET = "a-text-nobody-may-read"


@pytest.fixture
def task_events() -> Iterator[list[dict[str, Any]]]:
    """Every task event the broker carries while the test runs, as `celery events` sees."""
    seen: list[dict[str, Any]] = []
    ready = threading.Event()
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": seen.append})

        def capture() -> None:
            for _ in receiver.itercapture(limit=None, timeout=None, wakeup=False):
                ready.set()

        thread = threading.Thread(target=capture, daemon=True)
        thread.start()
        ready.wait(5)
        yield seen
        receiver.should_stop = True
        thread.join(5)


def of(events: list[dict[str, Any]], kind: str, task_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == kind and e.get("uuid") == task_id]


def test_sends_and_retried_events_show_by_name_with_their_arguments_redacted(
        start_worker, zapw, task_events):
    zapw.add_session("s1")
    start_worker()
    message_id = send_message.delay(to=TO, text=SECRET, session="s1").id
    wait_until(lambda: (r := services().store.get(message_id)) is not None
               and r.status is MessageStatus.SENT, what="the send")
    received = wait_until(lambda: of(task_events, "task-received", message_id),
                          what="task-received of the send")
    assert received[0]["name"] == "zapa.send_message"
    assert TO not in received[0]["kwargs"] and SECRET not in str(received[0])
    assert wait_until(lambda: of(task_events, "task-succeeded", message_id),
                      what="task-succeeded of the send")

    # A send zapw answers 500 waits in the due set and is published again under its id: a
    # new message, which must stay as redacted as the first.
    zapw.fail_next(1, 500, "try again")
    again = send_message.delay(to=TO, text=SECRET, session="s1").id
    retried = wait_until(lambda: len(of(task_events, "task-received", again)) >= 2
                         and of(task_events, "task-received", again),
                         what="the send taken again after its retry")
    assert {e["name"] for e in retried} == {"zapa.send_message"}
    assert len({e["kwargs"] for e in retried}) == 1
    # Both deliveries end as tasks that succeeded: the wait is the due set's, not a Celery
    # retry's countdown.
    assert wait_until(lambda: len(of(task_events, "task-succeeded", again)) >= 2,
                      what="task-succeeded of both deliveries of the send")
    assert not of(task_events, "task-retried", again)
    # A session event is the one kind still handled by a task: shown by name, redacted.
    connected = event("session.connected", {"phoneNumber": TO, "name": SECRET})
    prepared = services().publisher.prepare_event(connected, task_id="connected-1",
                                                  kwargsrepr="{'event': 'session.connected'}")
    services().redis.lpush(prepared.queue, prepared.payload)
    handled = wait_until(lambda: of(task_events, "task-received", "connected-1"),
                         what="task-received of the session event")
    assert [(e["name"], e["kwargs"]) for e in handled] == [
        ("zapa.handle_event", "{'event': 'session.connected'}")]
    assert wait_until(lambda: of(task_events, "task-succeeded", "connected-1"),
                      what="task-succeeded of the session event")
    assert all(SECRET not in str(e) and TO not in str(e) for e in task_events)
