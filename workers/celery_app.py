"""The one Celery app. Every process (web, worker, beat, tests) imports `app` from here."""

from __future__ import annotations

from celery import Celery


def create_celery_app() -> Celery:
    import workers.signals  # noqa: F401  (connects the publish stamp and worker heartbeats)
    from workers import broker_transport

    broker_transport.install()

    app = Celery("zapa_bridge", include=["workers.tasks"])
    app.config_from_object("celeryconfig")
    return app


app = create_celery_app()
