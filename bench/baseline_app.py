"""The outbound baseline: a bare Celery task that does one keep-alive `requests` POST to the
same simulator endpoint, on the same worker settings as ours (celeryconfig's) but without
our validation, status records, ordering, metrics or signals.

Started as `celery -A bench.baseline_app worker ...`, exactly as the Procfile starts ours.
"""

from __future__ import annotations

from typing import Any

import requests
from celery import Celery
from kombu import Exchange, Queue
from requests.adapters import HTTPAdapter

from zapa_bridge.config import get_settings

QUEUE = "bench.baseline"

app = Celery("bench_baseline")
app.config_from_object("celeryconfig")
app.conf.update(
    task_queues=[Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE)],
    task_default_queue=QUEUE, task_routes={}, beat_schedule={},
)

_settings = get_settings()
# One pooled session shared by the worker's threads, as our BridgeClient does.
_http = requests.Session()
_http.mount("http://", HTTPAdapter(pool_connections=1,
                                   pool_maxsize=max(10, _settings.worker_concurrency),
                                   max_retries=0))


@app.task(name="bench.bare_send", ignore_result=True)
def bare_send(session: str, to: str, text: str) -> Any:
    """POST zapw's send body; a non-2xx answer fails the task."""
    response = _http.post(f"{_settings.zapw_base_url}/sessions/{session}/messages",
                          json={"to": to, "type": "text", "text": text},
                          timeout=(_settings.zapw_connect_timeout, _settings.zapw_timeout))
    response.raise_for_status()
    return None


@app.task(name="bench.bare_echo", ignore_result=True)
def bare_echo(session: str, sender: str, text: str) -> None:
    """The loop baseline's inbound handler: queue the echo's send, one hop as ours does."""
    bare_send.delay(session, sender, f"echo: {text}")
