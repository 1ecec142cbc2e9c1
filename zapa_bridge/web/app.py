"""The app factory: defaults, then the environment, then the test overrides."""

from __future__ import annotations

from typing import Any

from flask import Flask

from zapa_bridge.config import load_settings
from zapa_bridge.services import Services
from zapa_bridge.web.api_errors import register_error_handlers
from zapa_bridge.web.probes import probes

MAX_BODY_BYTES = 1024 * 1024


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web app; `test_config` may carry `SETTINGS` (a Settings object)."""
    app = Flask(__name__)
    overrides = dict(test_config or {})
    settings = overrides.pop("SETTINGS", None) or load_settings()
    app.config.from_mapping(MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.config.update(overrides)
    app.extensions["zapa"] = Services(settings)

    register_error_handlers(app)
    app.register_blueprint(probes)
    return app
