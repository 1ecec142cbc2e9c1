"""Celery task messages built by hand, exactly as Celery and kombu's Redis transport would
store them, for the hot paths: the webhook intake queues its event inside the same Lua call
that deduplicates it, and workers hand on the next message of a conversation with one LPUSH.

`apply_async` costs about a millisecond of CPU per call (producer pool, routing, retry
policy, signals); this costs a tenth of that. The layout is Celery's protocol 2, built by
Celery's own `as_task_v2`; `tests/test_wire.py` has a real worker run such messages, so a
Celery or kombu upgrade that changes the format fails there.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from celery.utils.nodenames import anon_nodename

from workers.celery_app import app
from zapa_bridge.prepared import PreparedMessage
from zapa_bridge.queue_stats import ENQUEUED_AT_HEADER

_ORIGIN = anon_nodename()
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def prepare(task_name: str, queue: str, kwargs: dict[str, Any], *, task_id: str | None = None,
            kwargsrepr: str = "", ignore_result: bool = True) -> PreparedMessage:
    """The message that `send_task(task_name, kwargs=..., queue=queue, task_id=...)` would
    publish, at priority 0."""
    task_id = task_id or str(uuid.uuid4())
    message = app.amqp.as_task_v2(task_id, task_name, kwargs=kwargs, argsrepr="()",
                                  kwargsrepr=kwargsrepr, origin=_ORIGIN,
                                  ignore_result=ignore_result)
    headers = message.headers
    headers[ENQUEUED_AT_HEADER] = time.time()
    body = json.dumps([[], kwargs, _EMBED], separators=(",", ":"))
    envelope = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return PreparedMessage(queue=queue, payload=json.dumps(envelope, separators=(",", ":")))
