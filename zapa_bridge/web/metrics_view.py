"""`GET /metrics` in Prometheus' text format (no auth, as scrapers expect)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from zapa_bridge.ops.metrics import RedisCollector

metrics_view = Blueprint("metrics_view", __name__)


@metrics_view.get("/metrics")
def metrics() -> Any:
    web = current_app.extensions["zapa_web"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(web.core.redis, web.core.broker, web.queues))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
