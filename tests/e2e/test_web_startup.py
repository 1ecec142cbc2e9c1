"""The web server's processes all open one local spool as they boot; on a new spool path
they race to create it, and a process that loses the race must wait, not fail.

Met end to end: gunicorn on a new ZAPA_SPOOL_PATH failed to boot about one start in eight
(`ZAPA_SPOOL_PATH: cannot open ...: database is locked`, then "Worker failed to boot"):
switching a new database to WAL does not wait for a lock. The race is shown here without
gunicorn, by holding the lock a sibling process holds while it creates the spool, so it
never depends on how fast processes boot.
"""

from __future__ import annotations

import sqlite3
import threading

from zapa_bridge.inbound.spool import Spool


def test_opening_a_new_spool_while_another_process_creates_it_waits_for_it(tmp_path):
    path = tmp_path / "spool.sqlite3"
    creator = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        creator.execute("BEGIN IMMEDIATE")  # a sibling process mid-way through creating it
        release = threading.Timer(1.0, creator.execute, args=("COMMIT",))
        release.start()
        try:
            assert Spool(path).count() == 0
        finally:
            release.join()
    finally:
        creator.close()
