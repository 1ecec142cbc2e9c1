"""A real worker sending a conversation's messages one after another in one task run: what it
logs per send, and what a crash in the middle of such a run leaves behind."""

from __future__ import annotations

import re
import time

import pytest

from tests.helpers import recipient, wait_until
from workers.celery_app import app
from workers.tasks import send_message, services
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.queues import SEND_QUEUE_BY_PRIORITY
from zapa_bridge.store import keys

pytestmark = pytest.mark.slow

S = MessageStatus
TO = "5511988887777"
UNACKED = app.conf.broker_transport_options["unacked_key"]
INFO_LINE = re.compile(r"^\[[^]]*: INFO/[^]]*\] (?P<text>.*)$", re.MULTILINE)


def test_a_worker_logs_one_info_line_per_send_and_keeps_its_retry_lines(start_worker, zapw):
    zapw.add_session("s1")
    zapw.fail_next(1, 503, "Service Unavailable")
    worker = start_worker()
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(3)]
    ids += [send_message.delay(to=recipient(n), text="o", session="s1").id for n in range(2)]
    wait_until(lambda: all(r.status is S.SENT for r in services().store.get_many(ids)),
               what="5 messages sent")
    log = worker.log()

    info = [match["text"] for match in INFO_LINE.finditer(log)]
    shown = {message_id: [text.split()[0] for text in info if message_id in text]
             for message_id in ids}
    # The one zapw refused (whichever reached it first) failed once: our line of that retry
    # at WARNING; the retry waits in the due set, so Celery logs no retry of its own.
    [retried] = re.findall(r"WARNING/[^]]*\] event=message\.retry message_id=(\S+)", log)
    assert retried in ids
    assert shown == {message_id: ["event=message.sent"] for message_id in ids}
    assert not re.search(r"Task zapa\.send_message\[[^]]*\] retry: ", log)
    assert not [text for text in info if "received" in text or "succeeded" in text]


def test_a_worker_killed_mid_run_loses_no_next_message_of_its_conversation(start_worker,
                                                                           zapw):
    """The message the run was sending (taken as pending, claimed, not in any queue nor with
    kombu) is found by the lost-message sweep and sent, after its claim's lease, in order."""
    zapw.add_session("s1")
    zapw.latency = 1.0
    worker = start_worker()
    ids = [send_message.delay(to=TO, text=f"m{n}", session="s1").id for n in range(3)]
    store = services().store
    wait_until(lambda: store.get(ids[1]).status is S.SENDING, what="m1 sent by m0's run")
    worker.kill()
    redis = store.redis
    assert store.get(ids[0]).status is S.SENT
    assert redis.zscore(keys.PENDING, ids[1]) is not None
    assert ids[1] not in redis.hkeys(UNACKED)
    assert sum(redis.llen(queue) for queue in SEND_QUEUE_BY_PRIORITY.values()) == 0

    zapw.latency = 0.0
    start_worker()
    assert services().lost_message_sweeper.sweep(now=time.time() + 60) == [ids[1]]
    wait_until(lambda: all(r.status is S.SENT for r in store.get_many(ids)), timeout=30,
               what="the conversation sent after the crash")
    texts = [send.body["text"] for send in zapw.sent_to("s1")]
    # m1 may have reached zapw before the kill: then once more, in its place.
    assert texts in (["m0", "m1", "m2"], ["m0", "m1", "m1", "m2"])
    assert redis.zcard(keys.PENDING) == 0
