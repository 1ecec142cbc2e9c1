"""The Flask edge: built by `create_app`, served by gunicorn (see the Procfile)."""

from zapa_bridge.web.app import create_app

__all__ = ["create_app"]
