"""Redis key names: one module builds them, and ids from data never share a key.

Session `col:b` with id `c` and session `col` with id `b:c` are two things; joined with
':' unescaped they would be one key, and one of them would be lost or misrouted.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import zapa_bridge
from tests.helpers import wait_until
from tests.test_events import SENDER, event, received, text, wait_status
from workers.tasks import send_message, services
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.store import keys

TRICKY = ["", ":", "%", "%3A", "%25", "::", "a:b", "a%3Ab", "a%b", "%%3A:", "ü:ñ", "*", ">"]


def unjoin(joined: str) -> tuple[str, ...]:
    return tuple(piece.replace("%3A", ":").replace("%25", "%") for piece in joined.split(":"))


# -- keys.py ---------------------------------------------------------------------------------

def test_plain_ids_keep_the_key_names_the_bridge_always_wrote():
    assert [keys.message("m1"), keys.lane("s1>5511988887777"), keys.held("s1"),
            keys.bridge("s1", "3EB0AB12"), keys.rate("s1"), keys.idempotency("order-7"),
            keys.inbound(keys.inbound_id("s1", "3EB0AB12")), keys.inbound_dead("t-1"),
            keys.seen("9f86d081"), keys.worker("celery@host")] == [
        "zapa:msg:m1", "zapa:lane:s1>5511988887777", "zapa:held:s1", "zapa:bridge:s1:3EB0AB12",
        "zapa:rate:s1", "zapa:idempotency:order-7", "zapa:in:s1:3EB0AB12",
        "zapa:in-dead:t-1", "zapa:seen:9f86d081", "zapa:workers:celery@host"]
    assert [keys.PENDING, keys.DUE, keys.LANE_HEADS, keys.LANE_SEQ, keys.MESSAGES_RECENT,
            keys.DEAD, keys.HELD_SESSIONS, keys.SESSIONS, keys.SESSION_PHONES,
            keys.INBOUND_RECENT, keys.INBOUND_DEAD, keys.WEBHOOK_STATS] == [
        "zapa:pending", "zapa:due", "zapa:lane-heads", "zapa:lane-seq", "zapa:msg-recent",
        "zapa:dead", "zapa:held-sessions", "zapa:sessions", "zapa:session-phones",
        "zapa:in:recent", "zapa:in-dead", "zapa:stats:webhooks"]


def test_different_tuples_never_give_the_same_key():
    tuples = [combo for size in (1, 2, 3) for combo in itertools.product(TRICKY, repeat=size)]
    joined = [keys.join(*combo) for combo in tuples]
    assert len(set(joined)) == len(tuples)
    assert [unjoin(name) for name in joined] == tuples
    pairs = list(itertools.product(TRICKY, repeat=2))
    assert len({keys.bridge(session, bridge_id) for session, bridge_id in pairs}) == len(pairs)
    assert keys.bridge("col:b", "c") != keys.bridge("col", "b:c")
    assert keys.inbound_id("col:b", "c") != keys.inbound_id("col", "b:c")


@pytest.mark.parametrize("value", TRICKY)
def test_lua_key_part_escapes_exactly_as_python(redis_db, value):
    script = keys.LUA_KEY_PART + "return key_part(ARGV[1])"
    assert redis_db.eval(script, 0, value) == keys.part(value)


# -- ids that would collide joined plainly ---------------------------------------------------

@pytest.mark.slow
def test_receipts_of_sends_whose_session_and_zapw_id_join_alike_reach_their_own_record(
        start_worker, zapw, post_event):
    zapw.add_session("col:b")
    zapw.add_session("col")
    zapw.give_ids("col:b", "c", "d")
    zapw.give_ids("col", "b:c")
    start_worker()
    first = send_message.delay(to=SENDER, text="one", session="col:b").id
    later = send_message.delay(to=SENDER, text="two", session="col:b").id  # same lane
    other = send_message.delay(to=SENDER, text="three", session="col").id
    for message_id in (first, later, other):
        wait_status(message_id, MessageStatus.SENT)

    assert post_event(event("message.delivered", {"messageId": "c", "status": 3},
                            session="col:b")) == "accepted"
    assert post_event(event("message.read", {"messageId": "b:c", "status": 4},
                            session="col")) == "accepted"
    wait_status(first, MessageStatus.DELIVERED)
    wait_status(other, MessageStatus.READ)
    store = services().store
    assert [store.find_by_bridge_id("col:b", "c"), store.find_by_bridge_id("col", "b:c")] == [
        first, other]
    assert [send.body["text"] for send in zapw.sent_to("col:b")] == ["one", "two"]


@pytest.mark.slow
def test_inbound_messages_whose_session_and_id_join_alike_are_both_kept_and_echoed(
        start_worker, zapw, post_event):
    zapw.add_session("col:b")
    zapw.add_session("col")
    start_worker()
    assert post_event(received(text("c", "from col:b"), session="col:b")) == "accepted"
    assert post_event(received(text("b:c", "from col"), session="col")) == "accepted"

    wait_until(lambda: zapw.sent_to("col:b") and zapw.sent_to("col"), what="both echoes")
    entries = wait_until(lambda: len(found := services().inbound.recent()) == 2 and found,
                         what="both inbound messages recorded")
    assert sorted((entry["message"]["session"], entry["message"]["message_id"],
                   entry["message"]["text"], entry["routed_to"]) for entry in entries) == [
        ("col", "b:c", "from col", "zapa.echo"), ("col:b", "c", "from col:b", "zapa.echo")]
    assert len({entry["message"]["id"] for entry in entries}) == 2
    assert [send.body["text"] for send in zapw.sent_to("col:b")] == ["echo: from col:b"]
    assert [send.body["text"] for send in zapw.sent_to("col")] == ["echo: from col"]


def test_every_script_file_opens_with_its_keys_and_argv():
    package = Path(zapa_bridge.__file__).parent
    scripts = sorted(package.rglob("*.lua"))
    assert len(scripts) >= 17
    assert [path.name for path in scripts
            if not path.read_text().startswith(("-- KEYS[1]", "-- No KEYS"))] == []
