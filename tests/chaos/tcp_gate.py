"""A TCP relay that can be cut: one process's way to a server fails while others' still works.

The web tier reaches Redis through a gate; cutting it closes the gate's port (connecting is
refused) and resets every relayed connection, as a network partition or a firewall change
would, while the workers keep their own direct connections. It can also lose answers:
the server gets a request and acts on it, and the connection drops before the reply.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass

from zapa_bridge.devtools.embedded_redis import free_port

ACCEPT_POLL = 0.05  # s between looks at the stop flag while waiting for a connection


@dataclass
class _Link:
    """One relayed connection; `lose_answer`: drop it when the server next answers."""

    lose_answer: bool = False


class TcpGate:
    """Relays 127.0.0.1:`port` to `target_port`; `cut()` and `restore()` switch it."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._relayed: set[socket.socket] = set()
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None
        self._lose_after: bytes | None = None
        self._losses = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def restore(self) -> TcpGate:
        """Listen (again) on the gate's port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(ACCEPT_POLL)
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, args=(listener, self._stop),
                                          daemon=True, name=f"tcp-gate-{self.port}")
        self._acceptor.start()
        return self

    def lose_answers(self, marker: bytes, count: int = 1) -> None:
        """The next `count` requests containing `marker` reach the server; their answers do
        not reach the client, whose connection is reset instead."""
        with self._lock:
            self._lose_after, self._losses = marker, count

    def cut(self) -> None:
        """Refuse new connections and reset the relayed ones."""
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None
        with self._lock:
            relayed = list(self._relayed)
        for sock in relayed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        with listener:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=2)
                except OSError:
                    client.close()
                    continue
                for sock in (client, upstream):
                    sock.settimeout(None)
                with self._lock:
                    self._relayed.update((client, upstream))
                link = _Link()
                for src, dst, request in ((client, upstream, True), (upstream, client, False)):
                    threading.Thread(target=self._pump, args=(src, dst, link, request),
                                     daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, link: _Link,
              requests: bool) -> None:
        try:
            while data := src.recv(65536):
                if requests:
                    with self._lock:
                        if self._losses and self._lose_after and self._lose_after in data:
                            link.lose_answer, self._losses = True, self._losses - 1
                elif link.lose_answer:
                    break  # the server acted and answered; the client never hears it
                dst.sendall(data)
        except OSError:
            pass  # reset by a cut or by either end
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._relayed.difference_update((src, dst))
            for sock in (src, dst):
                sock.close()
