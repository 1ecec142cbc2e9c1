"""The app factory: defaults, then the environment, then the test overrides."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from flask import Flask

from zapa_bridge.config import load_settings
from zapa_bridge.errors import ConfigError
from zapa_bridge.intake import Intake
from zapa_bridge.services import Services
from zapa_bridge.web.api_errors import register_error_handlers
from zapa_bridge.web.probes import probes
from zapa_bridge.web.spool_drainer import SpoolDrainer
from zapa_bridge.web.webhooks import webhooks
from zapa_bridge.webhook_auth import WebhookAuthenticator

log = logging.getLogger("zapa.web")


@dataclass
class WebServices:
    """What the views need, built once per app."""

    core: Services
    authenticator: WebhookAuthenticator
    intake: Intake
    drainer: SpoolDrainer | None = None


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web app; `test_config` may carry `SETTINGS` (a Settings object)."""
    from workers.tasks import publish_event  # the one Celery app, shared with the workers

    app = Flask(__name__)
    overrides = dict(test_config or {})
    settings = overrides.pop("SETTINGS", None) or load_settings()
    settings.require_webhook_auth()
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.webhook_max_bytes)
    app.config.update(overrides)

    core = Services(settings)
    try:
        core.spool.count()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError({"ZAPA_SPOOL_PATH": f"cannot open {settings.spool_path}: {exc}"}) \
            from None
    secret = settings.webhook_secret
    token = settings.webhook_token
    web = WebServices(
        core=core,
        authenticator=WebhookAuthenticator(
            token=token.get_secret_value() if token else None,
            secret=secret.get_secret_value() if secret else None,
            allow_unauthenticated=settings.environment == "development"),
        intake=core.intake(publish_event),
    )
    if web.authenticator.allow_unauthenticated:
        log.warning("webhooks accepted without credentials (development, none configured)")
    if settings.spool_drain_interval > 0 and not app.testing:
        web.drainer = SpoolDrainer(web.intake, settings.spool_drain_interval).start()
    app.extensions["zapa"] = core
    app.extensions["zapa_web"] = web

    register_error_handlers(app)
    app.register_blueprint(probes)
    app.register_blueprint(webhooks)
    return app
