"""The inbound log records a message and hands it on in one step, once."""

from __future__ import annotations

import json

from tests.helpers import task_kwargs
from workers.tasks import services
from zapa_bridge.inbound.events import parse_event
from zapa_bridge.inbound.messages import InboundLog, normalize

EVENT = {"eventType": "message.received", "sessionId": "s1", "timestamp": 1_700_000_000_000,
         "data": {"messageId": "3EB0AA", "from": "5511988887777@s.whatsapp.net",
                  "to": "5511911112222@s.whatsapp.net", "type": "text", "text": "oi"}}


def log_of() -> InboundLog:
    return InboundLog(services().redis, retention=60)


def test_first_receive_records_and_queues_the_task_a_second_does_nothing(redis_db):
    message = normalize(parse_event(EVENT))
    hand_on = services().inbound_router.route(message)
    assert hand_on is not None and hand_on.task == "zapa.echo"

    assert log_of().receive(message, hand_on) is True
    assert log_of().receive(message, services().inbound_router.route(message)) is False

    queued = redis_db.lrange(hand_on.message.queue, 0, -1)
    assert len(queued) == 1
    assert task_kwargs(json.loads(queued[0])) == {"message": message.as_dict()}
    entry = log_of().get(message.id)
    assert entry is not None and entry["routed_to"] == "zapa.echo"
    assert entry["message"] == message.as_dict()
    assert redis_db.lrange("zapa:in:recent", 0, -1) == [message.id]


def test_a_message_with_nowhere_to_go_is_recorded_and_not_handed_on_later(redis_db):
    message = normalize(parse_event(EVENT))
    assert log_of().receive(message, None) is True
    entry = log_of().get(message.id)
    assert entry is not None and entry["routed_to"] is None
    assert log_of().receive(message, services().inbound_router.route(message)) is False
    assert redis_db.llen("zapa.inbound") == 0
