"""A small in-process stand-in for zapw, served over real HTTP for pipeline tests.

It answers the send and session endpoints with zapw's envelopes and error texts, records
every send it accepted, and can be told to fail the next sends in a given way.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

logging.getLogger("werkzeug").setLevel(logging.WARNING)


@dataclass
class Send:
    session: str
    body: dict[str, Any]
    at: float
    message_id: str


@dataclass
class ZapwStub:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    sends: list[Send] = field(default_factory=list)
    failures: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    message_ids: dict[str, deque[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    latency: float = 0.0

    def add_session(self, session_id: str, *, connected: bool = True,
                    phone: str | None = None) -> None:
        with self.lock:
            self.sessions[session_id] = {
                "id": session_id, "status": "connected" if connected else "disconnected",
                "createdAt": "2026-11-25T10:00:00.000Z",
                **({"phoneNumber": phone} if phone else {}),
            }

    def set_connected(self, session_id: str, connected: bool) -> None:
        with self.lock:
            self.sessions[session_id]["status"] = "connected" if connected else "disconnected"

    def fail_next(self, count: int, status: int = 500, error: str = "Failed to send message",
                  body: dict[str, Any] | None = None) -> None:
        """Answer the next `count` sends with `status` and zapw's error envelope (or `body`)."""
        with self.lock:
            for _ in range(count):
                self.failures.append((status, body or {"status": "error", "error": error}))

    def give_ids(self, session_id: str, *message_ids: str) -> None:
        """Answer the next sends on `session_id` with these message ids, in order (zapw's
        ids are its own: two sessions may give the same one)."""
        with self.lock:
            self.message_ids.setdefault(session_id, deque()).extend(message_ids)

    def sent_to(self, session: str | None = None) -> list[Send]:
        with self.lock:
            return [send for send in self.sends if session is None or send.session == session]

    def reset(self) -> None:
        with self.lock:
            self.sessions.clear()
            self.sends.clear()
            self.failures.clear()
            self.message_ids.clear()

    def app(self) -> Flask:
        app = Flask("zapw-stub")

        def error(status: int, text: str) -> Any:
            return jsonify({"status": "error", "error": text}), status

        @app.get("/health")
        def health() -> Any:
            return jsonify({"status": "ok", "timestamp": "2026-11-25T10:00:00.000Z",
                            "service": "zapw", "uptime": 12.5})

        @app.get("/sessions")
        def list_sessions() -> Any:
            with self.lock:
                return jsonify({"status": "success", "data": list(self.sessions.values())})

        @app.post("/sessions/<session_id>/messages")
        def send(session_id: str) -> Any:
            body = request.get_json()
            if self.latency:
                time.sleep(self.latency)
            with self.lock:
                if self.failures:
                    status, payload = self.failures.popleft()
                    return jsonify(payload), status
                session = self.sessions.get(session_id)
                if session is None:
                    return error(404, f"Session {session_id} not found")
                if session["status"] != "connected":
                    return error(400, "Session not connected")
                chosen = self.message_ids.get(session_id)
                message_id = (chosen.popleft() if chosen
                              else "3EB0" + uuid.uuid4().hex[:16].upper())
                self.sends.append(Send(session_id, body, time.time(), message_id))
            return jsonify({"status": "success", "data": {
                "messageId": message_id, "timestamp": int(time.time() * 1000),
                "status": "sent"}})

        return app

    def serve(self) -> tuple[Any, threading.Thread]:
        server = make_server("127.0.0.1", 0, self.app(), threaded=True)
        self.url = f"http://127.0.0.1:{server.server_port}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        return server, thread
