"""Celery side of zapa-bridge: the app, its queues and its tasks."""
