"""The loop baseline's web side: a bare Flask route at the webhook's path that hands each
`message.received` text to a bare Celery task (`bench.baseline_app.bare_echo`, which queues
`bare_send`) and answers 200 to everything else, receipts included; served by gunicorn with
the same gunicorn.conf.py as ours (`bench.baseline_loop_web:app`).

No token check, no parsing beyond the fields the echo needs, no record and no dedup: the
turn's bare Celery and HTTP cost, against which ours is set."""

from __future__ import annotations

from flask import Flask, request

from bench.baseline_app import bare_echo
from zapa_bridge.web.webhooks import WEBHOOK_PATH

app = Flask(__name__)


@app.post(WEBHOOK_PATH)
def receive() -> tuple[str, int]:
    event = request.get_json(silent=True) or {}
    data = event.get("data") or {}
    if event.get("eventType") == "message.received" and data.get("text"):
        sender = str(data.get("from", "")).partition("@")[0]
        bare_echo.delay(str(event.get("sessionId", "")), sender, str(data["text"]))
    return "", 200


@app.get("/healthz")
def healthz() -> str:
    """Only so the runner knows the server is up, as it does for ours."""
    return "ok"
