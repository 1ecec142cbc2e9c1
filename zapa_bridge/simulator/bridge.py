"""The simulated zapw, without HTTP: sessions, sends, events, and the phone on the other side.

Operations named like zapw's routes answer what zapw answers (or raise `ZapwError` with its
status and text); the others play WhatsApp's part (a QR scanned, a message arriving, a
receipt, a dropped connection) and return the event they emitted. All state sits behind
one lock; events are recorded and handed to the webhook sender outside it.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from zapa_bridge.simulator.config import SimulatorConfig, with_changes
from zapa_bridge.simulator.errors import ControlError, ZapwError
from zapa_bridge.simulator.faults import FaultPlan
from zapa_bridge.simulator.inbound import Inbound, new_message_id, received_data
from zapa_bridge.simulator.jsvalues import epoch_ms, iso_timestamp, js_string, js_truthy, map_key
from zapa_bridge.simulator.png import qr_data_url
from zapa_bridge.simulator.receipts import STATUS_CODES, Receipt, receipts_after_send
from zapa_bridge.simulator.scheduler import Scheduler
from zapa_bridge.simulator.state import EventLog, SentMessage, Session
from zapa_bridge.simulator.validation import validate_send
from zapa_bridge.simulator.webhooks import WebhookSender, WebhookSettings


def default_disconnect_reason() -> dict[str, Any]:
    """What a Baileys Boom error for a closed connection looks like once JSON-serialised."""
    return {"data": None, "isBoom": True, "isServer": False,
            "output": {"statusCode": 428, "headers": {},
                       "payload": {"statusCode": 428, "error": "Precondition Required",
                                   "message": "Connection Closed"}}}


class SimulatedBridge:
    """zapw's behaviour and state, shared by the HTTP edges and the Python API."""

    def __init__(self, config: SimulatorConfig, faults: FaultPlan | None = None) -> None:
        self._config = config
        self.faults = faults or FaultPlan()
        self._lock = threading.RLock()
        self._sessions: dict[str, Session] = {}
        self._sends: list[SentMessage] = []
        self._started = time.monotonic()
        self.events = EventLog()
        self.scheduler = Scheduler()
        self.webhooks = WebhookSender(self._webhook_settings)

    @property
    def config(self) -> SimulatorConfig:
        return self._config

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change run-time settings (ValueError names a bad one); later events use them."""
        with self._lock:
            self._config = with_changes(self._config, changes)
            return self._config

    # -- zapw's routes -----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "timestamp": iso_timestamp(), "service": "zapw",
                "uptime": round(time.monotonic() - self._started, 3)}

    def create_session(self, requested_id: Any = None) -> dict[str, Any]:
        """POST /sessions: a session waiting for its QR to be scanned."""
        session_id = requested_id if js_truthy(requested_id) else str(uuid.uuid4())
        qr_timeout = self.faults.current.qr_timeout
        now = time.time()
        if qr_timeout is not None:
            # Real zapw registers the session, then gives up waiting for Baileys' QR.
            self._register(Session(id=session_id, status="initializing", created_at=now))
            time.sleep(qr_timeout)
            raise ZapwError(500, "Timeout waiting for QR code")
        session = Session(id=session_id, status="qr_waiting", created_at=now,
                          qr_code=_new_qr(), qr_expires_at=now + self._config.qr_ttl)
        self._register(session)
        delay = self._config.connect_delay
        if delay is not None:
            self.scheduler.call_later(delay, self._auto_connect, map_key(session_id),
                                      session.epoch)
        return session.to_json()

    def list_sessions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [session.to_json() for session in self._sessions.values()]

    def get_session(self, session_id: str) -> dict[str, Any]:
        """GET /sessions/{id}; an expired QR is refreshed first, as zapw blocks to do."""
        with self._lock:
            session = self._zapw_lookup(session_id)
            expired = session.status == "qr_waiting" and (session.qr_expires_at or 0) <= time.time()
        if expired:
            time.sleep(self.faults.current.qr_refresh_delay)
            with self._lock:
                session = self._zapw_lookup(session_id)
                if session.status == "qr_waiting":
                    session.qr_code = _new_qr()
                    session.qr_expires_at = time.time() + self._config.qr_ttl
        with self._lock:
            return session.to_json()

    def delete_session(self, session_id: str) -> None:
        """DELETE /sessions/{id}: gone, with no webhook (zapw sends none on delete)."""
        with self._lock:
            session = self._zapw_lookup(session_id)
            session.epoch += 1
            del self._sessions[map_key(session_id)]

    def send(self, session_id: str, body: Any) -> dict[str, Any]:
        """POST /sessions/{id}/messages: validate, look up, maybe fail, else accept."""
        try:
            return self._send(session_id, body)
        finally:
            latency = self.faults.current.latency_ms
            if latency > 0:
                time.sleep(latency / 1000)

    def recent_events(self) -> list[dict[str, Any]]:
        return self.events.recent()

    def clear_events(self) -> None:
        """DELETE /events: the list empties; ids go on counting, as zapw's counter does."""
        self.events.clear()

    # -- WhatsApp's side -----------------------------------------------------------------

    def add_session(self, session_id: str, *, connected: bool = True) -> dict[str, Any]:
        """Create a session as POST /sessions does; connected at once if asked to be."""
        session = self.create_session(session_id)
        if connected:
            self.connect(session_id)
            return self.session(session_id) or session
        return session

    def session(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            session = self._sessions.get(map_key(session_id))
            return None if session is None else session.to_json()

    def connect(self, session_id: str, *, phone: str | None = None,
                name: str | None = None) -> dict[str, Any]:
        """The QR is scanned, or a dropped session comes back: emits session.connected."""
        with self._lock:
            event = self._connect(self._control_lookup(session_id), phone=phone, name=name)
        return self._emit(event)

    def disconnect(self, session_id: str,
                   reason: dict[str, Any] | None = None) -> dict[str, Any]:
        """The WhatsApp connection drops: emits session.disconnected; sends then get 400."""
        with self._lock:
            session = self._control_lookup(session_id)
            session.status = "disconnected"
            session.epoch += 1
            data = {"reason": default_disconnect_reason() if reason is None else reason}
            event = self._event(session, "session.disconnected", data)
        return self._emit(event)

    def inject_inbound(self, session_id: str, inbound: Inbound) -> dict[str, Any]:
        """A message arrives on a connected session: emits message.received."""
        inbound.check()
        with self._lock:
            session = self._control_lookup(session_id)
            if session.status != "connected":
                raise ControlError(409, f"session {session_id} is not connected")
            own_phone = session.phone_number or self._config.phone_for(session.id)
            data = received_data(inbound, own_phone, self._config.device)
            event = self._event(session, "message.received", data)
        return self._emit(event)

    def emit_status(self, message_id: str, status: str,
                    session_id: str | None = None) -> dict[str, Any]:
        """A receipt for a message: emits message.sent/delivered/read with its status code."""
        if status not in STATUS_CODES:
            raise ControlError(400, f"status: must be one of {', '.join(STATUS_CODES)}")
        with self._lock:
            if session_id is None:
                sent = next((s for s in self._sends if s.message_id == message_id), None)
                if sent is None:
                    raise ControlError(404, f"no accepted send has messageId {message_id}; "
                                            "name the session")
                session_id = sent.session_id
            session = self._control_lookup(session_id)
            event = self._event(session, f"message.{status}",
                                {"messageId": message_id, "status": STATUS_CODES[status]})
        return self._emit(event)

    def sends(self, session_id: str | None = None) -> list[SentMessage]:
        with self._lock:
            return [s for s in self._sends if session_id in (None, s.session_id)]

    def restart(self, *, drop_sessions: bool = False) -> None:
        """zapw's process starting again: what it held in memory is gone.

        Uptime and the event ring start afresh, timers and webhook retries die with the old
        process, and no `session.disconnected` is posted. Only sessions with WhatsApp
        credentials (connected once, in the real flavour) are restored, as `disconnected`
        until `log_in_again`; `drop_sessions` loses the credentials too.
        """
        self.scheduler.cancel_all()
        self.webhooks.abandon()
        keep_credentials = not drop_sessions and self._config.flavour != "mock"
        with self._lock:
            self._started = time.monotonic()
            self.events = EventLog()
            for key, session in list(self._sessions.items()):
                session.epoch += 1
                if keep_credentials and session.has_credentials:
                    session.status = "disconnected"
                    session.qr_code = session.qr_expires_at = None
                else:
                    del self._sessions[key]

    def log_in_again(self) -> None:
        """Baileys logs restored sessions in again: `connecting`, then `connected` with its
        `session.connected`, each step `restore_delay` s after the one before."""
        with self._lock:
            restored = [(key, session.epoch) for key, session in self._sessions.items()
                        if session.status == "disconnected" and session.has_credentials]
            delay = self._config.restore_delay
        for key, epoch in restored:
            self.scheduler.call_later(delay, self._log_in_step, key, epoch)

    def reset(self) -> None:
        """Forget sessions, sends, events, deliveries and faults; the settings stay."""
        self.scheduler.cancel_all()
        with self._lock:
            self._forget_sessions()
            self._sends.clear()
            self.events.clear()
            self.webhooks.clear()
            self.faults.clear()

    def close(self) -> None:
        self.scheduler.close()
        self.webhooks.close()

    # -- inside ----------------------------------------------------------------------------

    def _send(self, session_id: str, body: Any) -> dict[str, Any]:
        validate_send(body)
        with self._lock:
            session = self._zapw_lookup(session_id)
            faults = self.faults.current
            if session.status != "connected" or session_id in faults.not_connected:
                raise ZapwError(400, "Session not connected")
            text = body.get("text") if isinstance(body, dict) else None
            failure = self.faults.send_failure(text if isinstance(text, str) else None)
            if failure is not None:
                raise ZapwError(*failure)
            message_id = "" if faults.empty_message_id else new_message_id()
            now = time.time()
            sent = SentMessage(session_id, body, message_id, epoch_ms(now), now)
            self._sends.append(sent)
            receipts = receipts_after_send(self._config)
        for receipt in receipts:
            if receipt.delay <= 0:  # the server ack: recorded before the send is answered
                self._post_receipt(session_id, message_id, receipt)
            else:
                self.scheduler.call_later(receipt.delay, self._post_receipt, session_id,
                                          message_id, receipt)
        return {"messageId": message_id, "timestamp": sent.timestamp, "status": "sent"}

    def _register(self, session: Session) -> None:
        key = map_key(session.id)
        with self._lock:
            if key in self._sessions:
                raise ZapwError(409, f"Session {js_string(session.id)} already exists")
            self._sessions[key] = session

    def _auto_connect(self, key: str, epoch: int) -> None:
        with self._lock:
            session = self._sessions.get(key)
            if session is None or session.epoch != epoch or session.status != "qr_waiting":
                return
            event = self._connect(session)
        self._emit(event)

    def _post_receipt(self, session_id: str, message_id: str, receipt: Receipt) -> None:
        with self._lock:
            session = self._sessions.get(map_key(session_id))
            if session is None:
                return  # deleted meanwhile: zapw drops updates of unknown sessions
            event = self._event(session, receipt.event_type, receipt.data(message_id))
        self._emit(event)

    def _log_in_step(self, key: str, epoch: int) -> None:
        with self._lock:
            session = self._sessions.get(key)
            if session is None or session.epoch != epoch:
                return  # deleted, dropped or restarted meanwhile
            if session.status == "disconnected":
                session.status = "connecting"
                session.epoch += 1
                self.scheduler.call_later(self._config.restore_delay, self._log_in_step, key,
                                          session.epoch)
                return
            event = self._connect(session, phone=session.phone_number, name=session.name)
        self._emit(event)

    def _connect(self, session: Session, *, phone: str | None = None,
                 name: str | None = None) -> dict[str, Any]:
        """Mark `session` connected and return the event to emit once the lock is released."""
        session.status = "connected"
        session.phone_number = phone or session.phone_number or self._config.phone_for(session.id)
        session.name = self._config.name if name is None else name
        session.connected_at = time.time()
        session.qr_code = session.qr_expires_at = None
        session.epoch += 1
        session.has_credentials = True  # paired: Baileys wrote them (a mock zapw: see restart)
        return self._event(session, "session.connected",
                           {"phoneNumber": session.phone_number, "name": session.name})

    def _forget_sessions(self) -> None:
        for session in self._sessions.values():
            session.epoch += 1
        self._sessions.clear()

    def _zapw_lookup(self, session_id: str) -> Session:
        session = self._sessions.get(map_key(session_id))
        if session is None:
            raise ZapwError(404, f"Session {session_id} not found")
        return session

    def _control_lookup(self, session_id: str) -> Session:
        session = self._sessions.get(map_key(session_id))
        if session is None:
            raise ControlError(404, f"no session {session_id}")
        return session

    def _event(self, session: Session, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"sessionId": session.id,
                "origin": session.phone_number if session.phone_number else session.id,
                "eventType": event_type, "timestamp": epoch_ms(), "data": data}

    def _emit(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.add(event)
        self.webhooks.post(event)
        return event

    def _webhook_settings(self) -> WebhookSettings:
        config = self._config
        url = config.webhook_url if config.webhooks_enabled else None
        return WebhookSettings(url, config.webhook_attempts,
                               config.webhook_retry_delay, config.webhook_timeout)


def _new_qr() -> str:
    """A fresh QR image for a Baileys-like pairing string."""
    return qr_data_url(f"2@{uuid.uuid4().hex},{uuid.uuid4().hex},{uuid.uuid4().hex}")

