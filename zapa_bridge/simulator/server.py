"""The simulator as a running server, and the Python API tests drive it with.

`Simulator` binds a real TCP socket on loopback (or the given host) and serves zapw's
routes plus /_sim/ from a threaded werkzeug server in a background thread. Refusing
connections really closes the listening socket and every open connection, then binds the
same port again later, so clients see what a dead bridge looks like. A graceful refusal
answers the requests already being handled first and reads no new one, so no send is
half-done (accepted here, its answer lost). A restart is such a refusal with zapw's state
lost and its sessions restored meanwhile; stopping (as SIGTERM does) ends every session
without posting `session.disconnected`, as zapw's shutdown does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from zapa_bridge.simulator.bridge import SimulatedBridge
from zapa_bridge.simulator.config import RESTART_DOWNTIME, SimulatorConfig
from zapa_bridge.simulator.control_api import ControlApp
from zapa_bridge.simulator.faults import FaultPlan, Faults
from zapa_bridge.simulator.http_app import ZapwApp
from zapa_bridge.simulator.inbound import Inbound
from zapa_bridge.simulator.state import SentMessage
from zapa_bridge.simulator.webhooks import Delivery

log = logging.getLogger(__name__)
REBIND_PATIENCE = 5.0  # s to keep trying the port again after a refusal
GRACE_TIMEOUT = 10.0  # s a graceful refusal waits for the requests being answered


class QuietHandler(WSGIRequestHandler):
    """Request lines go to our logger at DEBUG instead of werkzeug's stderr lines."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s %s", self.command, self.path, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug(message, *args)

    def run_wsgi(self) -> None:
        connections: Connections = self.server.connections  # type: ignore[attr-defined]
        if not connections.begin_request():
            # A bridge that stopped reads nothing more: the connection closes unanswered.
            self.close_connection = True
            return
        try:
            super().run_wsgi()
        finally:
            connections.end_request()


class Connections:
    """The open client connections, across the servers a refusal replaces."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._answering = 0  # requests being handled now
        self._closing = False  # a graceful refusal: handle no new request
        self._idle = threading.Condition(self._lock)

    def add(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.add(connection)

    def discard(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)

    def count(self) -> int:
        with self._lock:
            return len(self._open)

    def begin_request(self) -> bool:
        """Whether a request just read may be handled (False once a graceful refusal began)."""
        with self._lock:
            if self._closing:
                return False
            self._answering += 1
            return True

    def end_request(self) -> None:
        with self._lock:
            self._answering -= 1
            self._idle.notify_all()

    def finish_answering(self, timeout: float) -> None:
        """Take no new request on open connections; wait for those being answered."""
        with self._lock:
            self._closing = True
            self._idle.wait_for(lambda: self._answering == 0, timeout)

    def reopen(self) -> None:
        with self._lock:
            self._closing = False

    def drop_all(self) -> None:
        """Cut every connection, as a crashed process would: clients see a reset."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)


class TrackingServer(ThreadedWSGIServer):
    """A threaded WSGI server that records its open connections, to cut them all at once."""

    def __init__(self, listener: socket.socket, app: Any, connections: Connections) -> None:
        host, port = listener.getsockname()[:2]
        super().__init__(host, port, app, handler=QuietHandler, fd=listener.fileno())
        listener.close()  # werkzeug works on its own duplicate of the descriptor
        self.connections = connections

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)


class Simulator:
    """A zapw bridge over real HTTP, with WhatsApp's side and faults under your control."""

    def __init__(self, config: SimulatorConfig | None = None, *, seed: int | None = None) -> None:
        self.bridge = SimulatedBridge(config or SimulatorConfig(), FaultPlan(seed))
        control = ControlApp(self.bridge, self.refuse_connections, self.restart)
        self.app = ZapwApp(self.bridge, control)
        self._lock = threading.Lock()
        self._server: TrackingServer | None = None
        self._thread: threading.Thread | None = None
        self._reopen: threading.Timer | None = None
        self._listening = threading.Event()
        self._connections = Connections()
        self._stopped = False
        self.host = self.bridge.config.host
        self.port = self.bridge.config.port

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind and serve in a background thread; pre-create the configured sessions."""
        self._serve(_listen(self.host, self.port))
        for session_id in self.bridge.config.sessions:
            self.bridge.create_session(session_id)
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop serving, cancel timers and webhook retries; safe to call twice. Sessions end
        with no webhook, as zapw's SIGTERM/SIGINT handler terminates them."""
        with self._lock:
            self._stopped = True
            if self._reopen is not None:
                self._reopen.cancel()
        self._close_server()
        self.bridge.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def refuse_connections(self, seconds: float, *, graceful: bool = False) -> None:
        """Close the socket and all connections now; listen on the same port in `seconds`.

        `graceful`: requests being handled are answered before their connections close, so
        every send is either accepted and answered or never read (as a bridge stopped
        cleanly); otherwise they are cut wherever they are (as a crash).
        """
        self._close_server(graceful=graceful)
        self._reopen_in(seconds)

    def restart(self, *, downtime: float = RESTART_DOWNTIME, drop_sessions: bool = False,
                wait: bool = True) -> None:
        """zapw restarting: it stops cleanly, then restores its sessions before it listens.

        Connections are refused for `downtime` s (0: not at all, as if back at once); once
        listening, the restored sessions log in again (see `SimulatedBridge.restart`).
        Returns when the simulator listens again, or at once if not `wait`.
        """
        if isinstance(downtime, bool) or not isinstance(downtime, int | float) or downtime < 0:
            raise ValueError("downtime: must be a number of seconds >= 0")
        if downtime == 0:
            self.bridge.restart(drop_sessions=drop_sessions)
            self.bridge.log_in_again()
            return
        self._close_server(graceful=True)
        self.bridge.restart(drop_sessions=drop_sessions)
        if self._reopen_in(downtime, then=self.bridge.log_in_again) and wait:
            self._wait_listening(downtime + REBIND_PATIENCE + 1)

    @property
    def refusing(self) -> bool:
        return self._server is None and not self._stopped

    def open_connections(self) -> int:
        """Client connections not yet answered and closed (a slow send, a cut one)."""
        return self._connections.count()

    # -- the Python side of the control API ------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        return self.bridge.config

    def configure(self, **changes: Any) -> SimulatorConfig:
        return self.bridge.configure(**changes)

    def add_session(self, session_id: str, *, connected: bool = True) -> dict[str, Any]:
        return self.bridge.add_session(session_id, connected=connected)

    def session(self, session_id: str) -> dict[str, Any] | None:
        return self.bridge.session(session_id)

    def inject_inbound(self, session_id: str, inbound: Inbound | None = None,
                       **fields: Any) -> dict[str, Any]:
        return self.bridge.inject_inbound(session_id, inbound or Inbound(**fields))

    def emit_status(self, message_id: str, status: str,
                    session_id: str | None = None) -> dict[str, Any]:
        return self.bridge.emit_status(message_id, status, session_id)

    def disconnect(self, session_id: str, reason: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.bridge.disconnect(session_id, reason)

    def connect(self, session_id: str, *, phone: str | None = None,
                name: str | None = None) -> dict[str, Any]:
        return self.bridge.connect(session_id, phone=phone, name=name)

    def set_faults(self, **changes: Any) -> Faults:
        return self.bridge.faults.update(**changes)

    def clear_faults(self) -> Faults:
        return self.bridge.faults.clear()

    def sends(self, session_id: str | None = None) -> list[SentMessage]:
        return self.bridge.sends(session_id)

    def webhook_deliveries(self, event_type: str | None = None) -> list[Delivery]:
        return self.bridge.webhooks.deliveries(event_type)

    def events(self) -> list[dict[str, Any]]:
        return self.bridge.recent_events()

    def reset(self) -> None:
        self.bridge.reset()

    # -- inside ----------------------------------------------------------------------------

    def _serve(self, listener: socket.socket) -> bool:
        """Serve on `listener` in a thread; False if stopped meanwhile (nothing served)."""
        server = TrackingServer(listener, self.app, self._connections)
        self.port = server.port
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True, name=f"zapw-sim-{self.port}")
        with self._lock:
            if self._stopped:  # stopped while we were binding again
                server.server_close()
                return False
            self._server, self._thread = server, thread
            self._connections.reopen()
            thread.start()
            self._listening.set()
        return True

    def _close_server(self, *, graceful: bool = False) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._listening.clear()
        if server is None:
            return
        server.shutdown()  # serve_forever returns and closes the listening socket
        if thread is not None:
            thread.join(timeout=5)
        server.server_close()
        if graceful:
            self._connections.finish_answering(timeout=GRACE_TIMEOUT)
        self._connections.drop_all()

    def _reopen_in(self, seconds: float, then: Callable[[], None] | None = None) -> bool:
        """Listen again in `seconds`, then call `then`; False if stopped already."""
        with self._lock:
            if self._stopped:
                return False
            if self._reopen is not None:
                self._reopen.cancel()  # the later reopening wins
            self._reopen = threading.Timer(seconds, self._rebind, args=(then,))
            self._reopen.daemon = True
            self._reopen.start()
            return True

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self._stopped or time.monotonic() > deadline:
                return

    def _rebind(self, then: Callable[[], None] | None = None) -> None:
        deadline = time.monotonic() + REBIND_PATIENCE
        while True:
            with self._lock:
                if self._stopped:
                    return
            try:
                listener = _listen(self.host, self.port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    log.error("could not listen on %s:%s again", self.host, self.port)
                    return
                time.sleep(0.05)
        if self._serve(listener) and then is not None:
            then()


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket; raises OSError (not werkzeug's sys.exit) if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener
