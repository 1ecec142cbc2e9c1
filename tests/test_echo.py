"""The echo's replies: one per inbound message, a burst's answered as one turn."""

from __future__ import annotations

from typing import Any

from zapa_bridge.inbound.bursts import combined
from zapa_bridge.inbound.echo import echo_reply

SENDER = "5511988887777"


def message(number: int, kind: str = "text", **fields: Any) -> dict[str, Any]:
    return {"id": f"A:M{number}", "message_id": f"M{number}", "session": "A",
            "sender": SENDER, "is_group": False, "type": kind, "text": None, "caption": None,
            "has_media": kind in ("image", "document"), **fields}


def test_a_text_is_echoed_keyed_on_its_message():
    assert echo_reply(message(0, text="hi")) == {
        "to": SENDER, "text": "echo: hi", "session": "A", "idempotency_key": "reply:A:M0"}


def test_a_burst_is_answered_once_saying_how_many_messages_each_on_its_line():
    burst = combined([message(0, text="hi"), message(1, text="I need"),
                      message(2, "image", caption="help with my order"),
                      message(3, "location", location={"latitude": 1.0, "longitude": 2.0})])
    reply = echo_reply(burst)
    assert reply == {"to": SENDER, "session": "A", "idempotency_key": "reply:A:M3",
                     "text": "echo: 4 messages as one turn\nhi\nI need\nhelp with my order"
                             "\n[location]"}


def test_a_burst_of_one_is_echoed_as_that_message():
    assert echo_reply(combined([message(0, "image")]))["text"] == "echo: got your image"


def test_a_group_message_gets_no_reply():
    assert echo_reply(message(0, text="all", is_group=True)) is None
