"""The two ways a simulator operation says no: as zapw would, or as the control API does."""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of the simulator's own errors."""


class ZapwError(SimulatorError):
    """An answer zapw gives in its error envelope `{"status":"error","error":text}`."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
        super().__init__(f"{status} {text}")


class ControlError(SimulatorError):
    """A control-API request the simulator cannot honour (unknown session, bad field)."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
        super().__init__(f"{status} {text}")
