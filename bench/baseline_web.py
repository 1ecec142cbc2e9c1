"""The webhook baseline: a bare Flask route at the webhook's path that answers 200, served
by gunicorn with the same gunicorn.conf.py as ours (`bench.baseline_web:app`)."""

from __future__ import annotations

from flask import Flask

from zapa_bridge.web.webhooks import WEBHOOK_PATH

app = Flask(__name__)


@app.post(WEBHOOK_PATH)
def receive() -> tuple[str, int]:
    return "", 200


@app.get("/healthz")
def healthz() -> str:
    """Only so the runner knows the server is up, as it does for ours."""
    return "ok"
