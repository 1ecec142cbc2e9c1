"""Benchmarks of zapa-bridge against bare Celery and Flask baselines run in the same process on
the same machine, so the ratios hold where absolute numbers are noise (`scripts/bench`).

Benchmarks are not tests: they assert nothing about time and are not in the test command.
Everything they start is on loopback, bounded, and stopped at the end.
"""
