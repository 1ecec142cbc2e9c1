"""The web process's probes, served by the app factory."""

from __future__ import annotations

import pytest

from zapa_bridge.config import load_settings
from zapa_bridge.web import create_app


@pytest.fixture
def client(redis_db):
    return create_app({"TESTING": True}).test_client()


def test_healthz_answers_without_dependencies():
    app = create_app({"TESTING": True, "SETTINGS": load_settings(REDIS_URL="redis://127.0.0.1:1/0")})
    answer = app.test_client().get("/healthz")
    assert (answer.status_code, answer.json) == (200, {"status": "ok"})


def test_readyz_is_ready_when_redis_answers(client):
    answer = client.get("/readyz")
    assert (answer.status_code, answer.json) == (200, {"status": "ready"})


def test_readyz_is_503_with_a_reason_when_redis_is_down():
    app = create_app({"TESTING": True, "SETTINGS": load_settings(REDIS_URL="redis://127.0.0.1:1/0")})
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "redis_unreachable"


def test_unknown_route_answers_the_json_error_shape(client):
    answer = client.get("/nope")
    assert answer.status_code == 404
    assert answer.json["error"]["code"] == "not_found"
