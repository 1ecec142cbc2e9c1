"""Inbound messages through the whole system: zapw webhook -> web -> worker -> inbound task
-> echo reply -> zapw, and the reply's receipts back to its status record."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import FIXED_ZAPW
from tests.e2e.stack import S, Stack, statuses
from tests.helpers import wait_until
from workers.tasks import services

pytestmark = pytest.mark.slow

SENDER = "5511988887777"


def test_inbound_text_is_echoed_and_zapws_own_receipts_leave_the_reply_sent(e2e: Stack):
    """zapw posts every receipt of a reply as `message.sent` without a status, several
    times: the record stays `sent`, and none of them fails or repeats anything."""
    e2e.sim.inject_inbound("A", sender=SENDER, text="hello there")
    (reply,) = e2e.wait_sends(1, "A")
    message_id = wait_until(lambda: services().store.find_by_bridge_id("A", reply.message_id),
                            what="the reply's record found by zapw's id")
    receipts = wait_until(lambda: len(d := [x for x in e2e.sim.webhook_deliveries(
        "message.sent") if x.event["data"]["messageId"] == reply.message_id
        and x.outcome == "delivered"]) >= 2 and d, what="zapw's receipts delivered")
    assert all("status" not in d.event["data"] for d in receipts)
    record = e2e.wait_status(message_id, S.SENT)
    wait_until(lambda: services().redis.llen("zapa.events") == 0, what="receipts handled")
    assert e2e.record(message_id).status is S.SENT
    assert services().inbound_dead_letters.count() == 0
    assert (record.attempts, len(e2e.sim.sends())) == (1, 1)


@pytest.mark.sim_config(**FIXED_ZAPW)
def test_inbound_text_is_routed_echoed_on_its_session_and_the_reply_reaches_read(e2e: Stack):
    event = e2e.sim.inject_inbound("A", sender=SENDER, text="hello there")
    inbound_id = f"A:{event['data']['messageId']}"

    logged = wait_until(lambda: (entry := services().inbound.get(inbound_id)) is not None
                        and entry["routed_to"] is not None and entry, what="inbound routed")
    assert logged["routed_to"] == "zapa.echo"
    assert (logged["message"]["sender"], logged["message"]["text"]) == (SENDER, "hello there")

    (reply,) = e2e.wait_sends(1, "A")
    assert reply.body == {"to": SENDER, "type": "text", "text": "echo: hello there"}
    assert e2e.sim.sends("B") == []

    message_id = wait_until(lambda: services().store.find_by_bridge_id("A", reply.message_id),
                            what="the reply's record found by zapw's id")
    record = e2e.wait_status(message_id, S.READ)
    assert (record.session, record.to, record.attempts) == ("A", SENDER, 1)
    receipts = [status for status in statuses(record) if status in ("sent", "delivered", "read")]
    assert receipts == ["sent", "delivered", "read"]


def test_two_sessions_with_interleaved_traffic_each_answer_their_own_senders(e2e: Stack):
    expected: dict[str, list[tuple[str, str]]] = {"A": [], "B": []}
    for i in range(12):
        session = "AB"[i % 2]
        sender = f"55119000000{i:02d}"
        e2e.sim.inject_inbound(session, sender=sender, text=f"m{i} via {session}")
        expected[session].append((sender, f"echo: m{i} via {session}"))

    e2e.wait_sends(12, timeout=30)
    for session in ("A", "B"):
        got = sorted((send.body["to"], send.body["text"]) for send in e2e.sim.sends(session))
        assert got == sorted(expected[session])
    assert len(e2e.sim.sends()) == 12
