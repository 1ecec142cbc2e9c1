"""A background thread per web process that queues spooled webhook events once Redis is
back, so an event accepted during an outage is processed without waiting for new traffic."""

from __future__ import annotations

import logging
import threading

from zapa_bridge.inbound.intake import Intake

log = logging.getLogger("zapa.spool")


class SpoolDrainer:
    def __init__(self, intake: Intake, interval: float) -> None:
        self.intake = intake
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zapa-spool-drainer",
                                        daemon=True)

    def start(self) -> SpoolDrainer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.intake.spool.count():
                    self.intake.drain_spool()
            except Exception:  # the thread must outlive any one failure
                log.exception("spool drain failed")
