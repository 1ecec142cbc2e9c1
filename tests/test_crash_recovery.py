"""The watch for dead worker processes: what a dead process was sending is queued again at
once, under its id, and the records of live processes are left alone."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import recipient, wait_until
from workers.tasks import send_message, services
from zapa_bridge.outbound.crash_recovery import CrashRecovery
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.queues import Queue
from zapa_bridge.store import keys

S = MessageStatus
TO = "5511988887777"
DEAD, LIVE = "host-a/101/aaaaaa", "host-b/202/bbbbbb"


def watcher(lost_after: float = 120.0) -> CrashRecovery:
    core = services()
    return CrashRecovery(core.store, core.dispatcher, core.lost_message_sweeper,
                         owner="watcher/1/cccccc", lost_after=lost_after, alive_ttl=10)


def queued_ids(client) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(Queue.SEND_DEFAULT, 0, -1)]


def taken_and_sending(client, owner: str, n: int) -> str:
    """A message a worker process popped and claimed (its lease still long)."""
    message_id = send_message.delay(to=recipient(n), text="hello", session="s1").id
    client.rpop(Queue.SEND_DEFAULT)
    assert services().store.transition(message_id, S.SENDING, count_attempt=True,
                                       lease_until=time.time() + 300,
                                       fields={"session": "s1", "owner": owner}).applied
    return message_id


def test_a_dead_process_sending_message_is_queued_again_at_once_and_a_live_one_is_not(
        redis_db):
    dead = taken_and_sending(redis_db, DEAD, 1)
    live = taken_and_sending(redis_db, LIVE, 2)
    redis_db.sadd(keys.OWNERS, DEAD, LIVE)
    redis_db.set(keys.alive(LIVE), "1", ex=10)

    done = watcher().watch()

    assert done is not None
    assert (done.dead, done.released, done.requeued) == ([DEAD], [dead], [dead])
    assert queued_ids(redis_db) == [dead]
    store = services().store
    assert redis_db.hget(store.key(dead), "lease_until") is None
    assert store.get(dead).history[-1]["note"] == "its worker died; queued again"
    assert redis_db.hget(store.key(live), "lease_until") is not None
    assert redis_db.smembers(keys.OWNERS) == {LIVE}


def test_the_watch_is_one_process_per_tick_and_repeating_it_queues_nothing_twice(redis_db):
    dead = taken_and_sending(redis_db, DEAD, 1)
    redis_db.sadd(keys.OWNERS, DEAD)
    first, second = watcher(), watcher()

    assert first.watch() is not None
    assert second.watch() is None  # the tick's lock is held
    redis_db.delete(keys.CRASH_WATCH_LOCK)
    again = second.watch()
    assert again is not None and not again.released
    assert queued_ids(redis_db) == [dead]


def test_a_beat_keeps_a_process_alive_for_a_few_seconds(redis_db):
    recovery = watcher()
    recovery.beat()

    assert 0 < redis_db.ttl(keys.alive(recovery.owner)) <= 10
    assert recovery.owner in redis_db.smembers(keys.OWNERS)


@pytest.mark.slow
def test_a_worker_killed_mid_send_is_taken_over_by_the_survivor_within_seconds(start_worker,
                                                                              zapw):
    """Neither kombu's redelivery (visibility 60 s) nor the lost-message sweep (60 s) can be
    what sends it here: the survivor finds the dead process's liveness key gone and queues
    its message again at once; the conversation's next message follows, in order."""
    zapw.add_session("s1")
    zapw.latency = 1.0
    env = {"ZAPA_WORKER_ALIVE_TTL": "3", "ZAPA_VISIBILITY_TIMEOUT": "60",
           "ZAPA_LOST_AFTER": "60"}
    workers = [start_worker(**env), start_worker(**env)]
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(2)]
    store = services().store
    wait_until(lambda: store.get(ids[0]).status is S.SENDING, what="m0 in flight")
    owner = store.redis.hget(store.key(ids[0]), "owner")
    [victim] = [worker for worker in workers
                if worker.process is not None and f"/{worker.process.pid}/" in owner]
    victim.kill()
    killed = time.time()
    zapw.latency = 0.0

    wait_until(lambda: all(r.status is S.SENT for r in store.get_many(ids)), timeout=20,
               what="the conversation sent after the kill")
    took = max(send.at for send in zapw.sent_to("s1")) - killed
    assert took < 8, f"sent {took:.1f} s after the kill"
    # The killed call (zapw sleeps, then records it) may come back once more, before the
    # resend: the liveness key outlives it.
    texts = [send.body["text"] for send in zapw.sent_to("s1")]
    assert texts in (["m0", "m1"], ["m0", "m0", "m1"])
    assert "its worker died; queued again" in [
        entry["note"] for entry in store.get(ids[0]).history]


def unacked(client, message_id: str, tag: str, taken_at: float) -> None:
    """A message a worker took from its queue (kombu's unacked hash and index) and has not
    claimed yet."""
    raw = client.rpop(Queue.SEND_DEFAULT)
    assert json.loads(raw)["headers"]["id"] == message_id
    client.hset(keys.UNACKED, tag, json.dumps([json.loads(raw), "", Queue.SEND_DEFAULT]))
    client.zadd(keys.UNACKED_INDEX, {tag: taken_at})


def test_a_message_taken_before_a_death_and_still_unclaimed_goes_again_one_taken_after_not(
        redis_db):
    """The dead process may have taken it: kombu would give it back only after the
    visibility timeout. One taken since the death is with a live worker."""
    seen = time.time() - 5  # when the watch found a process dead
    redis_db.set(keys.CRASH_SEEN, repr(seen), ex=120)
    before = send_message.delay(to=recipient(1), text="hello", session="s1").id
    unacked(redis_db, before, "tag-before", seen - 10)
    after = send_message.delay(to=recipient(2), text="hello", session="s1").id
    unacked(redis_db, after, "tag-after", seen + 1)
    redis_db.zadd(keys.PENDING, {before: seen - 20, after: seen - 20})

    done = watcher().watch()

    assert done is not None and done.requeued == [before]
    assert queued_ids(redis_db) == [before]
