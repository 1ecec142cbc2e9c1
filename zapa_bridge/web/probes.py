"""Liveness and readiness probes for load balancers and orchestrators (no auth)."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, current_app, jsonify

probes = Blueprint("probes", __name__)


@probes.get("/healthz")
def healthz() -> Any:
    """Alive: the process answers. Depends on nothing, so it never flaps with Redis."""
    return jsonify({"status": "ok"})


@probes.get("/readyz")
def readyz() -> Any:
    """Ready: Redis, which holds the queues and all state, answers."""
    try:
        current_app.extensions["zapa"].redis.ping()
    except redis.RedisError as exc:
        return jsonify({"status": "unavailable",
                        "error": {"code": "redis_unreachable",
                                  "message": f"redis: {type(exc).__name__}"}}), 503
    return jsonify({"status": "ready"})
