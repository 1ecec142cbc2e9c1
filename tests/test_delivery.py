"""One delivery attempt, run in this process against the zapw stub over HTTP and the suite's
Redis: what it reads, what it counts, and how it hands its conversation on (or sends its next
messages itself), in how many round trips."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.helpers import recipient, task_kwargs
from tests.zapw_stub import ZapwStub
from workers.broker import KombuRedisLayout
from workers.celery_app import app
from workers.tasks import send_message, services
from zapa_bridge.config import load_settings
from zapa_bridge.outbound.delivery import Deliverer
from zapa_bridge.outbound.receipts import Receipt
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.queues import Queue
from zapa_bridge.services import Services
from zapa_bridge.store import keys

S = MessageStatus
TO = "5511988887777"


class CountingConnection(redis.Connection):
    """A Redis connection that counts what it sends: one count per round trip."""

    round_trips = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.round_trips += 1
        super().send_packed_command(command, check_health)


def counted_core(zapw: ZapwStub, **env: str) -> Services:
    """The worker's core objects over a Redis client that counts its round trips."""
    settings = load_settings(ZAPW_URL=zapw.url, **env)
    pool = redis.ConnectionPool.from_url(settings.redis_url, decode_responses=True,
                                         connection_class=CountingConnection)
    core = Services(settings, KombuRedisLayout(app))
    core.redis = redis.Redis(connection_pool=pool)  # before anything builds on it
    core.redis.ping()  # connected (and its handshake sent) before counting starts
    return core


@pytest.fixture
def core(redis_db: redis.Redis, zapw: ZapwStub) -> Iterator[Services]:
    core = counted_core(zapw)
    yield core
    core.bridge.close()
    core.redis.connection_pool.disconnect()


@pytest.fixture
def limited(redis_db: redis.Redis, zapw: ZapwStub) -> Iterator[Services]:
    """`core`, with sessions limited to 2 sends in any 5 s."""
    core = counted_core(zapw, ZAPA_RATE_LIMIT="2/5s")
    yield core
    core.bridge.close()
    core.redis.connection_pool.disconnect()


@pytest.fixture
def deliverer(core: Services) -> Deliverer:
    return core.deliverer


def take_queued(client: redis.Redis, queue: str = Queue.SEND_DEFAULT) -> tuple[str, dict]:
    """Pop the oldest message of `queue`, as a worker would: its id and its kwargs."""
    raw = json.loads(client.rpop(queue))
    return raw["headers"]["id"], task_kwargs(raw)


def queued_ids(client: redis.Redis, queue: str = Queue.SEND_DEFAULT) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(queue, 0, -1)]


def test_a_send_reads_and_claims_in_one_call_and_counts_and_hands_on_in_its_sent_change(
        redis_db, zapw, deliverer):
    """Three round trips to Redis: the read that claims, the `sent` change (which also counts
    the send and its latency, and takes the next message of the conversation), and the one
    LPUSH that publishes that next message (through the same client, so it is counted)."""
    zapw.add_session("s1")
    # A first send loads the scripts into Redis (a round trip of their own, once).
    send_message.delay(to=recipient(1), text="first of all", session="s1")
    assert deliverer.deliver(*take_queued(redis_db)).status == "sent"
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(3)]
    message_id, kwargs = take_queued(redis_db)
    assert message_id == ids[0]

    CountingConnection.round_trips = 0
    assert deliverer.deliver(message_id, kwargs).status == "sent"
    assert CountingConnection.round_trips == 3

    record = services().store.get(message_id)
    assert (record.attempts, [entry["note"] for entry in record.history]) == (
        1, ["queued", "attempt 1", "accepted by bridge"])
    assert redis_db.hget(keys.METRICS_COUNTERS, "sends:sent") == "2"
    latency = redis_db.hgetall(keys.METRICS_SEND_LATENCY)
    assert sum(int(count) for bucket, count in latency.items() if bucket != "sum") == 2
    assert float(latency["sum"]) > 0
    # The next message is published once, by the worker, and is pending, not due.
    assert queued_ids(redis_db) == [ids[1]]
    assert redis_db.zscore(keys.PENDING, ids[1]) is not None
    assert redis_db.zscore(keys.DUE, ids[1]) is None
    assert services().dispatcher.move_due() == 0
    assert queued_ids(redis_db) == [ids[1]]


def test_a_run_sends_the_next_messages_of_its_conversation_itself_two_calls_each(
        redis_db, zapw, deliverer):
    """Chained: each next message is sent in the same run, in order, with no publish (no
    LPUSH, no Celery message): the read that claims and the `sent` change, per message."""
    zapw.add_session("s1")
    send_message.delay(to=recipient(1), text="first of all", session="s1")
    assert deliverer.deliver(*take_queued(redis_db)).status == "sent"
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(4)]
    message_id, kwargs = take_queued(redis_db)

    CountingConnection.round_trips = 0
    outcome = deliverer.deliver(message_id, kwargs, go_on_for=30)
    assert (outcome.status, outcome.attempts) == ("sent", 1)
    assert CountingConnection.round_trips == 2 * 4
    assert [send.body["text"] for send in zapw.sent_to("s1")][1:] == [f"m{n}" for n in range(4)]
    assert all(record.status is S.SENT for record in services().store.get_many(ids))
    assert queued_ids(redis_db) == []
    assert redis_db.zcard(keys.PENDING) == 0
    assert services().store.turn_of(f"s1>{TO}") is None


def test_a_run_past_its_time_publishes_the_next_message_as_before(redis_db, zapw, deliverer):
    zapw.add_session("s1")
    zapw.latency = 0.3
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(4)]
    assert deliverer.deliver(*take_queued(redis_db), go_on_for=0.5).status == "sent"
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["m0", "m1"]
    assert queued_ids(redis_db) == [ids[2]]
    assert redis_db.zscore(keys.PENDING, ids[2]) is not None


def test_a_run_leaves_a_next_message_held_by_another_worker_to_wait_in_the_due_set(
        redis_db, zapw, deliverer):
    """Its wait (for the other worker's lease) is in Redis: no Celery countdown of its own,
    since the run's message is another's."""
    zapw.add_session("s1")
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(3)]
    store = services().store
    assert store.transition(ids[1], S.SENDING, count_attempt=True,
                            lease_until=time.time() + 30).applied  # another worker's
    assert deliverer.deliver(*take_queued(redis_db), go_on_for=30).status == "sent"
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["m0"]
    assert time.time() < redis_db.zscore(keys.DUE, ids[1]) < time.time() + 1
    assert redis_db.zscore(keys.PENDING, ids[1]) is None
    assert (store.get(ids[2]).status, queued_ids(redis_db)) == (S.QUEUED, [])


def test_a_failed_send_waits_for_its_retry_in_the_due_set_not_in_a_countdown(
        redis_db, zapw, deliverer):
    """Its backoff is spent in Redis: the task's own delivery ends, so the visibility timeout
    need only cover one attempt."""
    zapw.add_session("s1")
    zapw.fail_next(1, 503, "Service Unavailable")
    message_id = send_message.delay(to=TO, text="m0", session="s1").id
    outcome = deliverer.deliver(*take_queued(redis_db), go_on_for=30)
    assert (outcome.status, outcome.retry_in is not None) == ("queued", True)
    assert time.time() < redis_db.zscore(keys.DUE, message_id) < time.time() + 1
    assert redis_db.zscore(keys.PENDING, message_id) is None
    assert queued_ids(redis_db) == []
    assert services().store.get(message_id).status is S.QUEUED


def test_a_run_leaves_a_next_message_without_a_rate_slot_in_the_due_set(redis_db, zapw,
                                                                        limited):
    zapw.add_session("s1")
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(3)]
    assert limited.deliverer.deliver(*take_queued(redis_db), go_on_for=30).status == "sent"
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["m0", "m1"]
    store = services().store
    assert (store.get(ids[2]).status, store.get(ids[2]).attempts) == (S.QUEUED, 0)
    assert redis_db.zscore(keys.DUE, ids[2]) > time.time() + 4
    assert redis_db.zscore(keys.PENDING, ids[2]) is None
    assert queued_ids(redis_db) == []


def test_a_claim_takes_the_rate_slot_and_the_sent_change_settles_it(redis_db, zapw, limited):
    zapw.add_session("s1")
    deliverer = limited.deliverer
    send_message.delay(to=recipient(1), text="first of all", session="s1")
    assert deliverer.deliver(*take_queued(redis_db)).status == "sent"
    message_id = send_message.delay(to=TO, text="hi", session="s1").id

    CountingConnection.round_trips = 0
    before = time.time()
    assert deliverer.deliver(*take_queued(redis_db)).status == "sent"
    assert CountingConnection.round_trips == 2
    # Counted from when zapw answered, after the call began.
    assert redis_db.zscore(keys.rate("s1"), f"{message_id}:1") > before


def test_a_claim_with_no_rate_slot_claims_nothing_and_waits_in_the_due_set(redis_db, zapw,
                                                                           limited):
    zapw.add_session("s1")
    deliverer = limited.deliverer
    for n in range(2):
        send_message.delay(to=recipient(n), text="fills the window", session="s1")
        assert deliverer.deliver(*take_queued(redis_db)).status == "sent"
    message_id = send_message.delay(to=TO, text="hi", session="s1").id
    outcome = deliverer.deliver(*take_queued(redis_db))
    assert (outcome.status, outcome.attempts, outcome.retry_in) == ("queued", 0, None)
    record = services().store.get(message_id)
    assert (record.status, record.attempts) == (S.QUEUED, 0)
    assert redis_db.zscore(keys.DUE, message_id) > time.time() + 4
    assert redis_db.zscore(keys.PENDING, message_id) is None
    assert redis_db.zcard(keys.rate("s1")) == 2


def test_a_session_other_than_the_expected_one_still_gets_its_own_slot(redis_db, zapw,
                                                                       limited):
    zapw.add_session("s1")
    zapw.add_session("s2")
    deliverer = limited.deliverer
    first = send_message.delay(to=TO, text="on s1", session="s1").id
    assert deliverer.deliver(*take_queued(redis_db)).status == "sent"
    second = send_message.delay(to=TO, text="on s2", session="s2").id
    assert deliverer.deliver(*take_queued(redis_db)).status == "sent"
    assert redis_db.zrange(keys.rate("s1"), 0, -1) == [f"{first}:1"]
    assert redis_db.zrange(keys.rate("s2"), 0, -1) == [f"{second}:1"]


def test_a_handed_on_conversation_is_sent_in_order_one_publish_each(redis_db, zapw,
                                                                    deliverer):
    zapw.add_session("s1")
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(5)]
    delivered = []
    while redis_db.llen(Queue.SEND_DEFAULT):
        assert redis_db.llen(Queue.SEND_DEFAULT) == 1  # only the head is ever queued
        message_id, kwargs = take_queued(redis_db)
        assert deliverer.deliver(message_id, kwargs).status == "sent"
        delivered.append(message_id)
    assert delivered == ids
    assert [send.body["text"] for send in zapw.sent_to("s1")] == [f"m{n}" for n in range(5)]
    assert redis_db.zcard(keys.PENDING) == 0
    assert services().store.turn_of(f"s1>{TO}") is None


def test_a_dead_letter_hands_its_conversation_on_and_is_counted(redis_db, zapw, deliverer):
    zapw.add_session("s1")
    zapw.fail_next(1, 400, "Invalid phone number")
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(2)]
    assert deliverer.deliver(*take_queued(redis_db)).status == "failed"
    assert redis_db.hget(keys.METRICS_COUNTERS, "sends:failed") == "1"
    assert queued_ids(redis_db) == [ids[1]]
    assert deliverer.deliver(*take_queued(redis_db)).status == "sent"
    assert services().store.get(ids[0]).status is S.FAILED


def test_a_stray_copy_whose_turn_has_not_come_is_dropped_unsent(redis_db, zapw, deliverer):
    zapw.add_session("s1")
    first = send_message.delay(to=TO, text="first", session="s1").id
    second = send_message.delay(to=TO, text="second", session="s1").id
    kwargs = services().store.get(second).message
    assert deliverer.deliver(second, kwargs).status == "queued"
    assert zapw.sent_to() == []
    assert queued_ids(redis_db) == [first]


def test_the_read_finds_the_session_by_number_and_holds_for_an_offline_one(redis_db, zapw,
                                                                          core, deliverer):
    zapw.add_session("s2", phone="1098765432", connected=False)
    core.sessions.replace_from_bridge(core.bridge.list_sessions())
    message_id = send_message.delay(to=TO, text="hi", from_number="1098765432").id
    assert deliverer.deliver(*take_queued(redis_db)).status == "held"
    record = services().store.get(message_id)
    assert (record.session, record.attempts) == ("s2", 0)
    assert zapw.sent_to() == []


def test_a_queued_id_whose_record_is_gone_is_logged_lost_and_sends_nothing(redis_db, zapw,
                                                                             deliverer):
    zapw.add_session("s1")
    message_id = send_message.delay(to=TO, text="hi", session="s1").id
    redis_db.delete(services().store.key(message_id))
    taken_id, kwargs = take_queued(redis_db)
    assert (taken_id, kwargs) == (message_id, {})
    assert deliverer.deliver(taken_id, kwargs).status == "unknown"
    assert zapw.sent_to() == []
    assert services().store.get(message_id) is None


def test_an_over_size_message_queued_by_name_is_a_dead_letter_without_calling_the_bridge(
        redis_db, zapw, deliverer):
    """Published by name, it skipped send_message's check: zapw could never take its body."""
    zapw.add_session("s1")
    fields = {"to": TO, "type": "image", "media_base64": "A" * 120_000, "session": "s1"}
    outcome = deliverer.deliver("by-name-1", fields)
    assert (outcome.status, outcome.attempts) == ("failed", 0)
    assert zapw.sent_to() == []
    reason = services().store.get("by-name-1").reason
    assert reason.startswith("invalid message: media_base64: the zapw request body would be ")
    assert "over ZAPW_MAX_BODY_BYTES (102400)" in reason


def test_zapws_body_parser_500_makes_a_dead_letter_at_the_first_attempt(redis_db, zapw,
                                                                         deliverer):
    zapw.add_session("s1")
    zapw.fail_next(1, 500, body={"error": "Internal Server Error",
                                 "message": "An unexpected error occurred", "statusCode": 500})
    message_id = send_message.delay(to=TO, text="hi", session="s1").id
    outcome = deliverer.deliver(*take_queued(redis_db))
    assert (outcome.status, outcome.attempts, outcome.retry_in) == ("failed", 1, None)
    assert services().store.get(message_id).reason.startswith("BridgeRejectedBody: ")


def test_a_record_written_with_its_message_inside_is_sent(redis_db, zapw, deliverer):
    """A message queued by the version before message bodies: its record holds the message
    (session included), and there is no body key."""
    zapw.add_session("s1")
    message_id = send_message.delay(to=TO, text="from before", session="s1").id
    store = services().store
    redis_db.hset(store.key(message_id), "message", redis_db.get(store.body_key(message_id)))
    redis_db.delete(store.body_key(message_id))
    assert deliverer.deliver(*take_queued(redis_db)).status == "sent"
    assert [send.body["text"] for send in zapw.sent_to("s1")] == ["from before"]


# -- a long text, in parts ------------------------------------------------------------------
LONG_TO = recipient(77)
# Three paragraphs of 3,000 characters: three parts, each a paragraph.
LONG = "\n\n".join(f"{n} " + "word " * 599 + "end." for n in "ABC")


def texts_sent(zapw) -> list[str]:
    return [send.body["text"] for send in zapw.sent_to("s1")]


def test_parts_go_one_attempt_each_and_the_run_sends_them_all_in_order(redis_db, zapw,
                                                                       deliverer):
    zapw.add_session("s1")
    message_id = send_message.delay(to=LONG_TO, text=LONG, session="s1").id
    outcome = deliverer.deliver(*take_queued(redis_db), go_on_for=30)

    record = services().store.get(message_id)
    assert (outcome.status, record.status) == ("queued", S.SENT)  # the first part's outcome
    assert texts_sent(zapw) == LONG.split("\n\n")
    assert [part["id"] for part in record.parts] == [s.message_id for s in zapw.sent_to("s1")]
    assert record.attempts == 3
    assert queued_ids(redis_db) == []


def test_a_run_out_of_time_publishes_the_message_again_for_its_next_part(redis_db, zapw,
                                                                         deliverer):
    zapw.add_session("s1")
    message_id = send_message.delay(to=LONG_TO, text=LONG, session="s1").id
    deliverer.deliver(*take_queued(redis_db), go_on_for=0)

    assert queued_ids(redis_db) == [message_id]
    record = services().store.get(message_id)
    assert (record.status, [p["status"] for p in record.parts]) == (
        S.QUEUED, ["sent", "queued", "queued"])
    assert services().store.turn_of(f"s1>{LONG_TO}") == message_id  # nothing else goes between


def test_a_delivery_after_a_crash_mid_part_resends_that_part_never_the_ones_before(
        redis_db, zapw, deliverer):
    zapw.add_session("s1")
    message_id = send_message.delay(to=LONG_TO, text=LONG, session="s1").id
    deliverer.deliver(*take_queued(redis_db), go_on_for=0)
    again = take_queued(redis_db)
    # A worker claims the second part and dies before zapw answers: its lease runs out.
    services().store.transition(message_id, S.SENDING, count_attempt=True,
                                lease_until=time.time() - 1, note="attempt 2")

    deliverer.deliver(*again, go_on_for=30)
    assert texts_sent(zapw) == LONG.split("\n\n")
    assert services().store.get(message_id).status is S.SENT


def test_a_part_zapw_failed_makes_a_dead_letter_whose_replay_sends_that_part_alone(
        redis_db, zapw, deliverer):
    zapw.add_session("s1")
    message_id = send_message.delay(to=LONG_TO, text=LONG, session="s1").id
    deliverer.deliver(*take_queued(redis_db), go_on_for=0)
    first = zapw.sent_to("s1")[0].message_id
    services().receipts.apply(Receipt("s1", first, S.FAILED, note="message.failed",
                                      reason="bridge reported failure: blocked"),
                              now=time.time())
    assert services().store.get(message_id).parts[0]["status"] == "failed"

    assert deliverer.deliver(*take_queued(redis_db), go_on_for=0).status == "failed"
    dead = services().store.get(message_id)
    assert dead.reason == "part 1 of 3 failed: bridge reported failure: blocked"
    assert len(zapw.sent_to("s1")) == 1  # nothing more was sent

    services().outbox.replay(message_id)
    deliverer.deliver(*take_queued(redis_db), go_on_for=30)
    record = services().store.get(message_id)
    assert record.status is S.SENT
    assert texts_sent(zapw) == [LONG.split("\n\n")[0], *LONG.split("\n\n")]
    assert record.parts[0]["id"] != first
