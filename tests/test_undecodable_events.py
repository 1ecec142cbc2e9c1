"""A task message whose body cannot be decoded (nested past what JSON decoding allows, or
not JSON at all) ends as an inbound dead letter, and its body is never logged."""

from __future__ import annotations

import json

from tests.helpers import wait_until
from workers.tasks import services
from zapa_bridge.queues import Queue

SECRET = "5511999990000-secret-text"


def push_raw_event(task_id: str, body: str) -> None:
    """A `handle_event` message with `body` as its raw body text."""
    message = json.loads(services().publisher.prepare_event({}, task_id=task_id,
                                                            kwargsrepr="").payload)
    message["body"] = body
    services().redis.lpush(Queue.EVENTS, json.dumps(message))


def test_a_body_nested_too_deep_to_decode_is_a_dead_letter_and_never_logged(start_worker):
    worker = start_worker()
    depth = 100_000
    push_raw_event("deep-1", '[[], {"event": {"secret": "' + SECRET + '", "x": '
                   + "[" * depth + "]" * depth + "}}, {}]")
    letter = wait_until(lambda: services().inbound_dead_letters.get("deep-1"),
                        what="dead letter of deep-1")
    assert "undecodable" in letter.error
    assert SECRET not in worker.log()


def test_a_body_that_is_not_json_and_an_unknown_task_are_dead_letters(start_worker):
    worker = start_worker()
    push_raw_event("garbled-1", "not json " + SECRET)
    unknown = services().publisher.prepare("zapa.no_such_task", Queue.EVENTS,
                                           {"secret": SECRET}, task_id="unknown-1")
    services().redis.lpush(unknown.queue, unknown.payload)
    garbled = wait_until(lambda: services().inbound_dead_letters.get("garbled-1"),
                         what="dead letter of garbled-1")
    assert garbled.error.startswith("undecodable")
    letter = wait_until(lambda: services().inbound_dead_letters.get("unknown-1"),
                        what="dead letter of unknown-1")
    assert letter.error == "unknown task" and letter.body is None
    assert SECRET not in worker.log()
