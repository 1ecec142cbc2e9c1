"""The operators' admin page under `/admin/`: server-rendered, behind the admin token.

Signing in starts a session kept in Redis (`RedisSessions`): the cookie holds only a random
id, so a cookie cannot be forged from anything, and signing out deletes the session where
it lives. A session lasts `ZAPA_ADMIN_SESSION_HOURS` from its sign-in and remembers a
fingerprint of the admin token it was made with: a new token ends every session. Failed
sign-ins are throttled per client address (`throttle`). Every form that changes something
carries a CSRF token kept in the session. Each section of the dashboard is read on its own:
one that cannot be read (Redis or the bridge down) says why, and the rest of the page still
shows; each message id opens that message's own page, its status record and history. The
page has no JavaScript, and its headers say so (`page_headers`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

import redis
from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    abort,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSession, SessionInterface
from werkzeug.exceptions import BadRequest, HTTPException

from zapa_bridge.errors import BridgeError, NotADeadLetter, QueueUnavailable
from zapa_bridge.inbound.dead_letters import InboundDeadLetter
from zapa_bridge.inbound.recovery import NOT_POSTING, DeliveryState
from zapa_bridge.logs import line
from zapa_bridge.ops.health import HealthChecker, HealthSnapshot
from zapa_bridge.outbound.holds import DAILY_LIMIT
from zapa_bridge.outbound.status_store import (
    DEAD_STATUSES,
    HISTORY_LIMIT,
    MessageRecord,
    MessageStatus,
)
from zapa_bridge.redaction import mask_phone
from zapa_bridge.store import keys
from zapa_bridge.web import throttle
from zapa_bridge.web.admin_api import token_matches, web
from zapa_bridge.wording import counted

log = logging.getLogger("zapa.web.admin")

admin_page = Blueprint("admin_page", __name__, url_prefix="/admin",
                       template_folder="templates", static_folder="static/admin",
                       static_url_path="/static")

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "zapa_admin"
SIGNED_IN = "admin"
CSRF = "csrf"
DEAD_LETTER_LIMIT = 50
HELD_LIMIT = 20
INBOUND_LIMIT = 20
RECENT_LIMIT = 20
REFRESH_SECONDS = 10
QR_WAITING = "qr_waiting"
REPLAYED = "replayed"  # a flash whose text is a replayed message's id, worded when shown
_PNG_DATA_URL = re.compile(r"data:image/png;base64,[A-Za-z0-9+/]+={0,2}")
# No scripts at all; styles only from our stylesheet; images ours or the QR's data: URL.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

T = TypeVar("T")


# -- sessions in Redis ---------------------------------------------------------------------

def token_fingerprint(admin_token: str | None) -> str:
    """What a session remembers of the token it was made with (not the token)."""
    material = admin_token.encode() if admin_token is not None else b"\0development"
    return hashlib.sha256(b"zapa-admin-session:" + material).hexdigest()


class AdminSession(SecureCookieSession):
    """A session's data, with the id its cookie holds and when it ends."""

    def __init__(self, initial: dict[str, Any] | None = None, *, sid: str | None = None,
                 expires_at: float = 0.0, stale: bool = False) -> None:
        super().__init__(initial)
        self.sid = sid
        self.expires_at = expires_at
        self.stale = stale  # the browser sent an id that no longer names a session
        self.renew = False  # a fresh id at the end of this request (sign-in, sign-out)


class RedisSessions(SessionInterface):
    """Sessions stored in Redis under the SHA-256 of a random id; the cookie holds the id.

    A session lasts `app.permanent_session_lifetime` from when its id was issued; it dies
    with its key, on sign-out, and when the admin token it was made with is replaced. A
    request that sends no cookie (every webhook, every API call) never touches Redis."""

    serializer = TaggedJSONSerializer()

    def __init__(self, client: redis.Redis, fingerprint: str) -> None:
        self._redis = client
        self._fingerprint = fingerprint

    def open_session(self, app: Flask, request: Request) -> AdminSession:
        sid = request.cookies.get(self.get_cookie_name(app)) \
            if "HTTP_COOKIE" in request.environ else None
        if not sid:
            return AdminSession()
        try:
            raw = self._redis.get(keys.admin_session(_digest(sid)))
        except redis.RedisError as exc:
            log.warning(line("admin.session_unreadable", error=type(exc).__name__))
            return AdminSession()
        record = _record(raw)
        if not isinstance(record, dict) or record.get("fingerprint") != self._fingerprint \
                or float(record.get("expires_at", 0)) <= time.time():
            return AdminSession(sid=sid, stale=True)
        return AdminSession(record.get("data") or {}, sid=sid,
                            expires_at=float(record["expires_at"]))

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        assert isinstance(session, AdminSession)
        if session.accessed:
            response.vary.add("Cookie")
        if session.sid and (session.renew or session.stale or not session):
            self._forget(session.sid)
            if not session:
                self._drop_cookie(app, response)
                return
        if not session:
            return
        if session.renew or session.stale or not session.sid:
            session.sid = secrets.token_urlsafe(32)
            session.expires_at = time.time() + app.permanent_session_lifetime.total_seconds()
        elif not session.modified:
            return
        remaining_ms = int((session.expires_at - time.time()) * 1000)
        if remaining_ms <= 0:
            self._drop_cookie(app, response)
            return
        record = {"data": dict(session), "fingerprint": self._fingerprint,
                  "expires_at": session.expires_at}
        try:
            self._redis.set(keys.admin_session(_digest(session.sid)),
                            self.serializer.dumps(record), px=remaining_ms)
        except redis.RedisError as exc:  # the page was answered; the session is not kept
            log.warning(line("admin.session_not_saved", error=type(exc).__name__))
            self._drop_cookie(app, response)
            return
        response.set_cookie(
            self.get_cookie_name(app), session.sid,
            expires=datetime.fromtimestamp(session.expires_at, tz=UTC),
            path=self.get_cookie_path(app), domain=self.get_cookie_domain(app),
            secure=self.get_cookie_secure(app), httponly=self.get_cookie_httponly(app),
            samesite=self.get_cookie_samesite(app))

    def _forget(self, sid: str) -> None:
        try:
            self._redis.delete(keys.admin_session(_digest(sid)))
        except redis.RedisError as exc:  # it still ends when its key expires
            log.warning(line("admin.session_not_deleted", error=type(exc).__name__))

    def _drop_cookie(self, app: Flask, response: Response) -> None:
        response.delete_cookie(
            self.get_cookie_name(app), path=self.get_cookie_path(app),
            domain=self.get_cookie_domain(app), secure=self.get_cookie_secure(app),
            httponly=self.get_cookie_httponly(app), samesite=self.get_cookie_samesite(app))


def _record(raw: bytes | str | None) -> Any:
    """A stored session's record; None for a missing or unreadable one."""
    if not raw:
        return None
    try:
        return RedisSessions.serializer.loads(raw if isinstance(raw, str) else raw.decode())
    except ValueError:  # not JSON, not UTF-8, or a tag Flask does not know
        return None


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


# -- sign-in and CSRF ----------------------------------------------------------------------

def signed_in() -> bool:
    return web().admin_token is None or session.get(SIGNED_IN) is True


def requires_sign_in(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not signed_in():
            return redirect(url_for(".login_form"))
        return view(*args, **kwargs)
    return guarded


def csrf_token() -> str:
    if CSRF not in session:
        session[CSRF] = secrets.token_urlsafe(32)
    return str(session[CSRF])


def check_csrf() -> None:
    given, expected = request.form.get("csrf_token", ""), session.get(CSRF)
    if not expected or not hmac.compare_digest(given.encode(), str(expected).encode()):
        raise BadRequest("The form's CSRF token is missing or stale: reload the page and "
                         "try again.")


def renew_session() -> None:
    """Nothing from before survives: the old id is deleted and a new one issued."""
    session.clear()
    if isinstance(session, AdminSession):
        session.renew = True


@admin_page.context_processor
def page_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "token_required": web().admin_token is not None,
            "notices": notices}


@admin_page.errorhandler(HTTPException)
def page_error(error: HTTPException) -> Any:
    return render_template("admin/error.html", error=error), error.code or 500


@admin_page.after_request
def page_headers(response: Response) -> Response:
    response.headers.update(PAGE_HEADERS)
    if request.endpoint != "admin_page.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def favicon() -> Response:
    """`/favicon.ico`, so browsers get an icon rather than a 404 (registered by the app)."""
    response = send_from_directory(STATIC, "favicon.ico", mimetype="image/vnd.microsoft.icon",
                                   max_age=86400)
    return response


# -- views ---------------------------------------------------------------------------------

@admin_page.get("/login")
def login_form() -> Any:
    if signed_in():
        return redirect(url_for(".dashboard"))
    return render_template("admin/login.html", error=None)


@admin_page.post("/login")
def login() -> Any:
    address = throttle.client_address()
    retry_after = throttle.current().blocked(throttle.ADMIN, address)
    if retry_after is None and not token_matches(request.form.get("token")):
        log.warning(line("admin.sign_in_refused", remote=address))
        retry_after = throttle.current().failed(throttle.ADMIN, address)
        if retry_after is None:
            return render_template("admin/login.html",
                                   error="That is not the admin token."), 401
    if retry_after is not None:
        return render_template("admin/login.html", error=(
            f"Too many wrong tokens from this address: try again in {retry_after} s.")), \
            429, {"Retry-After": str(retry_after)}
    renew_session()
    session[SIGNED_IN] = True
    session[CSRF] = secrets.token_urlsafe(32)
    try:
        web().core.redis.ping()  # the session is kept there: say so now, not after a loop
    except redis.RedisError as exc:
        log.error(line("admin.sign_in_unavailable", error=type(exc).__name__))
        session.clear()
        return render_template("admin/login.html", error=(
            "Sessions are kept in Redis, which did not answer: sign-in is impossible until "
            "it does.")), 503
    return redirect(url_for(".dashboard"))


@admin_page.post("/logout")
def logout() -> Any:
    if session.get(SIGNED_IN):
        check_csrf()
    renew_session()
    flash("Signed out.", "ok")
    return redirect(url_for(".login_form"))


@admin_page.get("/")
@requires_sign_in
def dashboard() -> Any:
    return render_template("admin/dashboard.html", board=gather(),
                           refresh_seconds=REFRESH_SECONDS)


@admin_page.post("/dead-letters/<message_id>/replay")
@requires_sign_in
def replay(message_id: str) -> Any:
    check_csrf()
    try:
        record = web().core.outbox.replay(message_id)
    except NotADeadLetter as exc:
        flash(f"Not replayed: {exc}.", "error")
    except (QueueUnavailable, redis.RedisError) as exc:
        flash(f"Not replayed, Redis did not take it: {exc}", "error")
    else:
        log.info("admin page: dead letter %s replayed", record.id)
        flash(record.id, REPLAYED)  # worded when shown, from the record as it is then
    return redirect(url_for(".dashboard"))


@admin_page.get("/messages/<message_id>")
@requires_sign_in
def message(message_id: str) -> Any:
    """One outbound message's status record and history: recipient masked, no content."""
    try:
        record = web().core.store.get(message_id)
    except redis.RedisError as exc:
        abort(503, description=f"Redis did not answer ({type(exc).__name__}): the message's "
                               "record cannot be read now.")
    if record is None:
        abort(404, description=f"No message {message_id} is recorded: the id is wrong, or "
                               "its record has expired.")
    return render_template("admin/message.html", m=MessageView.of(record),
                           history_limit=HISTORY_LIMIT)


@admin_page.post("/inbound-dead-letters/<letter_id>/replay")
@requires_sign_in
def replay_inbound(letter_id: str) -> Any:
    check_csrf()
    try:
        letter = web().core.inbound_dead_letters.replay(letter_id)
    except NotADeadLetter as exc:
        flash(f"Not replayed: {exc}.", "error")
    except redis.RedisError as exc:
        flash(f"Not replayed, Redis did not take it: {type(exc).__name__}", "error")
    else:
        log.info("admin page: inbound dead letter %s replayed", letter.id)
        flash(f"Event {letter.id} replayed: it is queued again.", "ok")
    return redirect(url_for(".dashboard"))


# -- what the dashboard shows --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session as the page shows it; `stale`: the registry's last state, the bridge being
    down."""

    id: str
    status: str
    phone_number: str | None
    name: str | None
    held: int
    qr_image: str | None = None
    qr_expires: float | None = None  # epoch seconds
    stale: bool = False

    @property
    def qr_expired(self) -> bool:
        return self.qr_expires is not None and self.qr_expires <= time.time()


@dataclass(frozen=True, slots=True)
class MessageRow:
    """An outbound record as the page shows it: recipient masked, never the content."""

    id: str
    session: str | None
    to: str
    type: str
    status: str
    attempts: int
    reason: str | None
    updated: float

    @classmethod
    def of(cls, record: MessageRecord) -> MessageRow:
        return cls(record.id, record.session, mask_phone(record.to), record.type,
                   str(record.status), record.attempts, record.reason, record.updated)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    at: float
    status: str
    note: str


@dataclass(frozen=True, slots=True)
class PartRow:
    """One part of a long text: its place, zapw's id and status, why it failed."""

    number: int
    bridge_message_id: str | None
    status: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class MessageView:
    """One outbound record for its own page: recipient masked, never the content."""

    id: str
    status: str
    session: str | None
    to: str
    type: str
    priority: str
    attempts: int
    failures: int
    reason: str | None
    bridge_message_id: str | None
    created: float
    updated: float
    history: list[HistoryRow]
    dead: bool
    parts: list[PartRow]  # a long text's parts, in order; none for a message sent whole

    @classmethod
    def of(cls, record: MessageRecord) -> MessageView:
        history = [HistoryRow(float(entry.get("at") or 0), str(entry.get("status") or ""),
                              str(entry.get("note") or "")) for entry in record.history]
        return cls(record.id, str(record.status), record.session, mask_phone(record.to),
                   record.type, record.priority, record.attempts, record.failures,
                   record.reason, record.bridge_message_id, record.created, record.updated,
                   history[::-1], record.status in DEAD_STATUSES,
                   [PartRow(number, part.get("id"), str(part.get("status") or ""),
                            part.get("reason")) for number, part in enumerate(record.parts, 1)])


@dataclass(frozen=True, slots=True)
class InboundRow:
    """An inbound message as the page shows it: sender masked, never the text."""

    received: float
    session: str
    sender: str
    type: str
    is_group: bool
    routed_to: str | None


@dataclass
class Dashboard:
    health: HealthSnapshot | None = None
    # Read live, not from the snapshot: the notice shows within a poll of GET /events.
    webhooks_not_posting: str | None = None
    sessions: list[SessionRow] = field(default_factory=list)
    sessions_notice: str | None = None
    queues: dict[str, Any] | None = None
    held_counts: dict[str, int] = field(default_factory=dict)
    held: list[MessageRow] = field(default_factory=list)
    dead_letters: list[MessageRow] = field(default_factory=list)
    inbound_dead_letters: list[InboundDeadLetter] = field(default_factory=list)
    recent: list[MessageRow] = field(default_factory=list)
    inbound: list[InboundRow] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)

    def read(self, section: str, reader: Callable[[], T], default: T) -> T:
        """The section's data, or `default` with the reason noted when it cannot be read."""
        try:
            return reader()
        except (redis.RedisError, BridgeError) as exc:
            self.unreadable[section] = f"{type(exc).__name__}: {exc}"
            return default


def gather() -> Dashboard:
    services, board = web(), Dashboard()
    core = services.core
    board.health = board.read("health", lambda: _health(services.health_checker()), None)
    board.webhooks_not_posting = board.read("health", lambda: (
        NOT_POSTING if DeliveryState.read(core.redis).not_posting else None), None)
    board.queues = board.read("queues", services.queue_overview, None)
    board.held_counts = board.read("held", core.held.counts, {})
    board.sessions = board.read("sessions", lambda: _sessions(board, board.held_counts), [])
    board.held = board.read("held", lambda: [
        MessageRow.of(record) for session in sorted(board.held_counts)
        for record in core.store.get_many(core.held.ids(session, HELD_LIMIT))], [])
    board.dead_letters = board.read("dead_letters", lambda: [
        MessageRow.of(record) for record in core.dead_letters.list(DEAD_LETTER_LIMIT)], [])
    board.inbound_dead_letters = board.read("inbound_dead_letters", lambda: (
        core.inbound_dead_letters.list(DEAD_LETTER_LIMIT)), [])
    board.recent = board.read("recent", lambda: [
        MessageRow.of(record) for record in core.store.recent(RECENT_LIMIT)], [])
    board.inbound = board.read("inbound", lambda: [
        _inbound_row(entry) for entry in core.inbound.recent(INBOUND_LIMIT)], [])
    return board


def _health(checker: HealthChecker) -> HealthSnapshot:
    try:
        return checker.latest() or checker.run()
    except redis.RedisError:
        return checker.run()  # reports Redis itself as unhealthy


def _sessions(board: Dashboard, held: dict[str, int]) -> list[SessionRow]:
    core = web().core
    try:
        live = core.bridge.list_sessions()
    except BridgeError as exc:
        board.sessions_notice = (f"The bridge did not answer ({exc.message}): these are the "
                                 "last states the registry knows, without QR codes.")
        return [SessionRow(state.id, state.status, state.phone_number, state.name,
                           held.get(state.id, 0), stale=True) for state in core.sessions.all()]
    return [SessionRow(info.id, info.status, info.phone_number, info.name,
                       held.get(info.id, 0), _qr_image(info.status, info.qr_code),
                       _epoch(info.qr_expires_at)) for info in live]


def _qr_image(status: str, qr_code: str | None) -> str | None:
    """The QR as an image source, only when waiting for a scan and only a PNG data URL."""
    if status != QR_WAITING or not qr_code or not _PNG_DATA_URL.fullmatch(qr_code):
        return None
    return qr_code


def _epoch(iso: object) -> float | None:
    """zapw's ISO 8601 time (`2026-11-25T10:01:00.000Z`) in epoch seconds; None if it is
    not one."""
    if not isinstance(iso, str) or not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _inbound_row(entry: dict[str, Any]) -> InboundRow:
    message = entry["message"]
    return InboundRow(entry["received"], message.get("session", ""),
                      mask_phone(message.get("sender")), message.get("type", ""),
                      bool(message.get("is_group")), entry.get("routed_to"))


# -- notices -------------------------------------------------------------------------------

def notices() -> list[tuple[str, str]]:
    """The flashed notices as (category, text). A replay's is worded from its record as it
    is when shown, not as it was when Replay was pressed: a worker may have failed it again
    in between, and the notice must not say "queued" beside a table that says "failed"."""
    flashed = cast(list[tuple[str, str]], get_flashed_messages(with_categories=True))
    return [replay_notice(text) if category == REPLAYED else (category, text)
            for category, text in flashed]


def replay_notice(message_id: str) -> tuple[str, str]:
    replayed = f"Dead letter {message_id} replayed"
    try:
        record = web().core.store.get(message_id)
    except redis.RedisError as exc:
        return "ok", f"{replayed}; its status cannot be read now ({type(exc).__name__})."
    if record is None:
        return "error", f"{replayed}, but its record is gone."
    if record.status in DEAD_STATUSES:
        return "error", (f"{replayed}, but it {record.status} again: "
                         f"{record.reason or 'no reason recorded'}.")
    now = {
        MessageStatus.QUEUED: "it is queued again",
        MessageStatus.HELD: "it is held until the next UTC day (daily limit)"
        if record.reason == DAILY_LIMIT else f"it is held until session {record.session} connects",
        MessageStatus.SENDING: "it is being sent",
    }.get(record.status, f"it is {record.status}")
    return "ok", f"{replayed}: {now}."


# -- template filters ----------------------------------------------------------------------

@admin_page.app_template_filter("admin_when")
def when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@admin_page.app_template_filter("admin_age")
def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@admin_page.app_template_filter("admin_ago")
def ago(epoch: float | None) -> str:
    return "-" if not epoch else f"{age(max(0.0, time.time() - epoch))} ago"


@admin_page.app_template_filter("admin_from_now")
def from_now(epoch: float | None) -> str:
    """A time to come as "in 45 s"; one already past as "45 s ago"."""
    if not epoch:
        return "-"
    return f"in {age(epoch - time.time())}" if epoch > time.time() else ago(epoch)


@admin_page.app_template_filter("admin_count")
def count(number: int, noun: str) -> str:
    """`1 dead letter`, `2 dead letters`, in the templates."""
    return counted(number, noun)

