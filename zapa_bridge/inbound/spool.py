"""A durable local spool for webhook events the web process accepted while Redis was down.

SQLite in WAL mode: safe for the several processes of one web server, survives a restart,
and needs nothing installed. Events leave it only once Redis has taken them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spooled_at REAL NOT NULL,
    deduplicated INTEGER NOT NULL,
    claimed_until REAL NOT NULL DEFAULT 0,
    event TEXT NOT NULL,
    token TEXT NOT NULL DEFAULT ''
)
"""
# Spools written before events carried their dedupe token.
_ADD_TOKEN = "ALTER TABLE events ADD COLUMN token TEXT NOT NULL DEFAULT ''"
CLAIM_SECONDS = 60.0


class Spool:
    """Append events, then drain them in order through a handler that may fail."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._create()

    @retry(retry=retry_if_exception_type(sqlite3.OperationalError), reraise=True,
           stop=stop_after_delay(10), wait=wait_fixed(0.05))
    def _create(self) -> None:
        # Switching to WAL takes an exclusive lock and does not wait for one: a sibling
        # web process creating the same spool at the same moment makes it fail at once.
        db = self._connect()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
        if "token" not in columns:
            db.execute(_ADD_TOKEN)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    def put(self, event: dict[str, Any], *, deduplicated: bool, token: str = "") -> None:
        """Store one event durably (fsync'd before this returns), with the dedupe token its
        intake used."""
        self._connect().execute(
            "INSERT INTO events (spooled_at, deduplicated, event, token) VALUES (?, ?, ?, ?)",
            (time.time(), int(deduplicated), json.dumps(event, separators=(",", ":")), token),
        )

    def count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def drain(self, handle: Callable[[dict[str, Any], bool, str], None],
              limit: int = 500) -> int:
        """Hand spooled events to `handle(event, deduplicated, token)` oldest first, deleting each
        once handled; stops at the first failure (it is raised). Returns how many went.

        Each event is claimed for a while before it is handled, so two processes draining
        at once never both take it, and a process that dies mid-way loses nothing: its claim
        runs out and the event is drained again.
        """
        db = self._connect()
        now = time.time()
        rows = db.execute("SELECT id, deduplicated, event, token FROM events "
                          "WHERE claimed_until < ? ORDER BY id LIMIT ?", (now, limit)).fetchall()
        drained = 0
        for row_id, deduplicated, raw, token in rows:
            claimed = db.execute(
                "UPDATE events SET claimed_until = ? WHERE id = ? AND claimed_until < ?",
                (time.time() + CLAIM_SECONDS, row_id, time.time())).rowcount
            if not claimed:
                continue
            try:
                handle(json.loads(raw), bool(deduplicated), token)
            except Exception:
                db.execute("UPDATE events SET claimed_until = 0 WHERE id = ?", (row_id,))
                raise
            db.execute("DELETE FROM events WHERE id = ?", (row_id,))
            drained += 1
        return drained
