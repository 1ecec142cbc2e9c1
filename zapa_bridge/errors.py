"""Every error zapa-bridge raises, in one tree.

    ZapaError
    ├── ConfigError                 a setting is missing or malformed (names the variable)
    ├── InvalidMessage (ValueError) a send request is malformed (names the field)
    ├── InvalidEvent (ValueError)   a webhook body lacks zapw's envelope (names the field)
    ├── IntakeUnavailable           a webhook could be stored neither in Redis nor the spool
    ├── SessionResolutionError      no session could be chosen for a send
    ├── QueueUnavailable            Redis could not take the message: nothing was queued
    ├── NotADeadLetter              a replay named a message that is not a dead letter
    └── BridgeError                 anything the zapw bridge call could not do
        ├── BridgeUnreachable       connection refused or failed: nothing was sent
        ├── BridgeTimeout           no answer in time: a send may have gone out
        ├── BridgeUnauthorized      401: the API key is wrong or missing
        ├── SessionNotFound         404: the bridge has no such session
        ├── SessionAlreadyExists    409: creating a session that exists
        ├── SessionNotConnected     400 "Session not connected": hold, don't fail
        ├── BridgeInvalidRequest    400 with any other text: our request was wrong
        ├── BridgeRejectedBody      Express's 500 (no status): body too large or not JSON
        ├── BridgeServerError       5xx: socket error or bridge fault
        └── UnexpectedBridgeResponse an answer the contract does not describe

Each bridge error says whether retrying the same call can help (`retryable`) and whether the
message may already have reached WhatsApp (`maybe_sent`).
"""

from __future__ import annotations


class ZapaError(Exception):
    """Root of every error raised by zapa-bridge."""


class ConfigError(ZapaError):
    """A setting read from the environment is missing or malformed."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        lines = "; ".join(f"{name}: {why}" for name, why in self.problems.items())
        super().__init__(f"invalid configuration: {lines}")

    def lines(self) -> list[str]:
        """One line per problem, as a process prints them when it refuses to start."""
        return [f"invalid configuration: {name}: {why}" for name, why in self.problems.items()]


class InvalidMessage(ZapaError, ValueError):
    """A send request is malformed; nothing was queued."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class InvalidEvent(ZapaError, ValueError):
    """A webhook body is not a zapw event envelope."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class IntakeUnavailable(ZapaError):
    """A webhook event could be stored neither in Redis nor in the local spool."""


class SessionResolutionError(ZapaError):
    """No bridge session could be chosen for a send (unknown sender number)."""

    retryable = False


class QueueUnavailable(ZapaError):
    """Redis (the broker or our state) could not take the message; nothing was queued."""


class NotADeadLetter(ZapaError, LookupError):
    """The message named for a replay is unknown or not a dead letter."""


class BridgeError(ZapaError):
    """The zapw bridge did not do what was asked."""

    retryable: bool = False
    maybe_sent: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        session_id: str | None = None,
        maybe_sent: bool | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.session_id = session_id
        if maybe_sent is not None:
            self.maybe_sent = maybe_sent
        super().__init__(message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code})"


class BridgeUnreachable(BridgeError):
    """The connection failed or was refused: nothing reached the bridge."""

    retryable = True


class BridgeTimeout(BridgeError):
    """The bridge did not answer in time; a send may have been delivered."""

    retryable = True
    maybe_sent = True


class BridgeUnauthorized(BridgeError):
    """The bridge refused our API key: a configuration fault, retried slowly."""

    retryable = True


class SessionNotFound(BridgeError):
    """The bridge has no session with this id."""


class SessionAlreadyExists(BridgeError):
    """A session with this id already exists on the bridge."""


class SessionNotConnected(BridgeError):
    """The session exists but is offline or waiting for its QR scan."""

    retryable = True


class BridgeInvalidRequest(BridgeError):
    """The bridge rejected the request as malformed; repeating it cannot help."""


class BridgeRejectedBody(BridgeError):
    """zapw's body parser refused the request: too large or not JSON; repeating it cannot help."""


class BridgeServerError(BridgeError):
    """The bridge failed with a 5xx: a socket error or an internal fault."""

    retryable = True


class UnexpectedBridgeResponse(BridgeError):
    """The bridge answered outside its contract (HTML page, bad JSON, odd status)."""

    retryable = True
