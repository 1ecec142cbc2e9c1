"""This process's core objects: one `Services`, built lazily (after a worker forks) with
the settings and kombu's Redis layout. The tasks, the due-message mover and the web app
share it."""

from __future__ import annotations

from functools import cache

from workers.broker import KombuRedisLayout
from workers.celery_app import app
from zapa_bridge.config import get_settings
from zapa_bridge.services import Services


@cache
def services() -> Services:
    return Services(get_settings(), KombuRedisLayout(app))
