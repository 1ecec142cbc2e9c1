"""The app factory: defaults, then the environment, then the test overrides."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from zapa_bridge import logs
from zapa_bridge.bridge.reconcile import ReconcileReport
from zapa_bridge.config import load_settings
from zapa_bridge.errors import ConfigError
from zapa_bridge.inbound.auth import WebhookAuthenticator
from zapa_bridge.inbound.intake import Intake
from zapa_bridge.ops.health import HealthChecker
from zapa_bridge.services import Services
from zapa_bridge.web import throttle
from zapa_bridge.web.admin_api import admin_api
from zapa_bridge.web.admin_page import (
    SESSION_COOKIE,
    RedisSessions,
    admin_page,
    favicon,
    token_fingerprint,
)
from zapa_bridge.web.api_errors import register_error_handlers
from zapa_bridge.web.metrics_view import metrics_view
from zapa_bridge.web.probes import probes
from zapa_bridge.web.serving import RequestBodyGuard, body_timeout
from zapa_bridge.web.spool_drainer import SpoolDrainer
from zapa_bridge.web.webhooks import webhooks

log = logging.getLogger("zapa.web")


@dataclass
class WebServices:
    """What the views need, built once per app: the core objects, and the few pieces of
    the Celery edge (the send task, the health check and reconciliation as the periodic
    tasks run them), so the views never import Celery."""

    core: Services
    authenticator: WebhookAuthenticator
    admin_token: str | None
    send_message: Any
    health_checker: Callable[[], HealthChecker]
    run_reconcile: Callable[[], ReconcileReport]
    queues: list[str]
    drainer: SpoolDrainer | None = None

    @property
    def intake(self) -> Intake:
        return self.core.intake

    def queue_overview(self) -> dict[str, Any]:
        queues = {name: stat.as_dict()
                  for name, stat in self.core.queue_stats(self.queues).items()}
        held = self.core.held.counts()
        dead = self.core.dead_letters.count()
        waiting = sum(int(stat["depth"] or 0) for stat in queues.values())
        return {"queues": queues, "held": held, "dead_letters": dead,
                "totals": {"waiting": waiting, "held": sum(held.values()),
                           "dead_letters": dead}}


def serves_requests() -> bool:
    """False only when Flask's own CLI builds the app for a command that serves nothing
    (`flask routes`, `flask shell`): those run without the credentials a server needs."""
    import click
    from flask.cli import FlaskGroup

    context = click.get_current_context(silent=True)
    if context is None or context.parent is None:
        return True
    return not isinstance(context.find_root().command, FlaskGroup) or context.info_name == "run"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web app; `test_config` may carry `SETTINGS` (a Settings object)."""
    from workers import tasks  # the one Celery app, shared with the workers
    from workers.broker import KombuRedisLayout
    from zapa_bridge.tracing import configure_tracing

    app = Flask(__name__)
    overrides = dict(test_config or {})
    settings = overrides.pop("SETTINGS", None) or load_settings()
    logs.configure(settings.log_level)
    if serves_requests():
        settings.require_webhook_auth()
        settings.require_admin_token()
    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    # Admin sessions live in Redis (the cookie holds a random id): nothing to sign, so no
    # SECRET_KEY; their lifetime and the cookie's flags come from the settings.
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=settings.webhook_max_bytes,
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.admin_session_hours))
    app.config.update(overrides)

    core = Services(settings, KombuRedisLayout(tasks.app))
    app.session_interface = RedisSessions(core.redis, token_fingerprint(admin_token))
    app.extensions["zapa_throttle"] = throttle.FailureThrottle(core.redis)
    try:
        core.spool.count()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError({"ZAPA_SPOOL_PATH": f"cannot open {settings.spool_path}: {exc}"}) \
            from None
    secret, token = settings.webhook_secret, settings.webhook_token
    web = WebServices(
        core=core,
        authenticator=WebhookAuthenticator(
            token=token.get_secret_value() if token else None,
            secret=secret.get_secret_value() if secret else None,
            allow_unauthenticated=settings.environment == "development"),
        admin_token=admin_token,
        send_message=tasks.send_message,
        health_checker=lambda: tasks.health_checker(core),
        run_reconcile=lambda: tasks.run_reconcile(core),
        queues=[queue.name for queue in tasks.app.conf.task_queues],
    )
    if web.authenticator.allow_unauthenticated:
        log.warning("webhooks accepted without credentials (development, none configured)")
    if admin_token is None:
        log.warning("admin API open without a token (development, ZAPA_ADMIN_TOKEN unset)")
    if not app.testing:
        web.drainer = SpoolDrainer(web.intake, settings.spool_drain_interval).start()
    app.extensions["zapa"] = core
    app.extensions["zapa_web"] = web

    register_error_handlers(app)
    app.register_blueprint(probes)
    app.register_blueprint(webhooks)
    app.register_blueprint(admin_api)
    app.register_blueprint(admin_page)
    app.register_blueprint(metrics_view)
    app.add_url_rule("/favicon.ico", "favicon", favicon)
    app.wsgi_app = RequestBodyGuard(  # type: ignore[method-assign]
        app.wsgi_app, timeout=body_timeout())
    if settings.trusted_proxies:
        # Only then: a client talking to us directly could otherwise name any address.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    configure_tracing("zapa-bridge-web", flask_app=app)  # off unless configured
    return app
