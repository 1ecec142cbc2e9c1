"""gunicorn settings for the `web` process (see Procfile).

gevent workers: each connection is a greenlet, so clients that send slowly (on purpose or
not) wait without holding anything the webhook needs. Nothing of ours is imported here:
the master must stay free of the app and of gevent's patching (the worker patches itself
as it starts, then loads the app); see zapa_bridge/web/serving.py.
"""

import os
import sys
from typing import Any

import gevent
import gevent.local
from gunicorn.workers.ggevent import GeventWorker  # what worker_class = "gevent" loads


def _whole(variable: str, default: int) -> int:
    """A whole number >= 1 from the environment; else stop, naming the variable."""
    raw = os.environ.get(variable) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"invalid configuration: {variable}: must be a whole number >= 1, "
                         f"not {raw!r}")
    return int(raw)


def _seconds(variable: str, default: float) -> float:
    """A number of seconds > 0 from the environment; else stop, naming the variable."""
    raw = os.environ.get(variable) or str(default)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise SystemExit(f"invalid configuration: {variable}: must be a number of seconds "
                         f"> 0, not {raw!r}")
    return seconds


# The exit status that makes gunicorn's master stop rather than start another worker.
APP_LOAD_ERROR = 4
HEADER_TIMEOUT = _seconds("ZAPA_WEB_HEADER_TIMEOUT", 10)


class Worker(GeventWorker):
    """gunicorn's gevent worker, whose wait for a request's line and headers is
    ZAPA_WEB_HEADER_TIMEOUT for a connection's first request and `keepalive` for each
    later one (the stock worker uses `keepalive` for both: either a header timeout of 2 s
    or idle connections kept, and waited for at shutdown, as long as the header timeout)."""

    def init_process(self) -> None:
        self._connection = gevent.local.local()  # one greenlet per connection
        super().init_process()

    def load_wsgi(self) -> None:
        """A configuration error is printed as its lines alone, and stops the server
        (exit 4, gunicorn's "App failed to load") instead of a traceback per worker."""
        # The worker's imports, after gevent's patching.
        from zapa_bridge.config import print_config_error
        from zapa_bridge.errors import ConfigError

        try:
            super().load_wsgi()
        except ConfigError as error:
            print_config_error(error)
            sys.exit(APP_LOAD_ERROR)

    def timeout_ctx(self) -> gevent.Timeout:
        first = not getattr(self._connection, "served", False)
        self._connection.served = True
        return gevent.Timeout(HEADER_TIMEOUT if first else self.cfg.keepalive, False)


def _bind() -> str:
    """ZAPA_WEB_BIND; else all interfaces at PORT, which honcho, foreman, Heroku and Dokku
    set for the process; else loopback only."""
    if os.environ.get("ZAPA_WEB_BIND"):
        return os.environ["ZAPA_WEB_BIND"]
    port = os.environ.get("PORT", "")
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise SystemExit(f"invalid configuration: PORT: must be a port number, not {port!r}")
        return f"0.0.0.0:{port}"
    return "127.0.0.1:8000"


bind = _bind()
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = Worker
# Connections each process holds at once, slow ones included; past it, new ones wait in
# the listen backlog.
worker_connections = _whole("ZAPA_WEB_CONNECTIONS", 1000)
# How long an idle keep-alive connection waits for its next request (gunicorn's default).
# The first request's head gets HEADER_TIMEOUT (see Worker); the body's deadline,
# ZAPA_WEB_BODY_TIMEOUT, is kept by the app (zapa_bridge/web/serving.py).
keepalive = 2
timeout = 30
graceful_timeout = 10
accesslog = "-"
# %(U)s is the path without its query string: the webhook token never reaches the log.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
# A control socket at one shared default path would be fought over by every server on
# the host; nothing here uses it.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Check the settings before any worker starts, in a forked child so that the master
    imports nothing of ours: a bad setting stops the server with its lines alone (exit 2),
    as worker and beat do, instead of each worker failing on its own."""
    child = os.fork()
    if child == 0:
        os._exit(_settings_status())
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) == 2:
        raise SystemExit(2)


def _settings_status() -> int:
    """In the child: 2 (the problems printed) for a configuration the web refuses, else 0
    (anything else is for the worker to meet and report)."""
    try:
        from zapa_bridge.config import load_settings, print_config_error
        from zapa_bridge.errors import ConfigError

        try:
            settings = load_settings()
            settings.require_webhook_auth()
            settings.require_admin_token()
        except ConfigError as error:
            print_config_error(error)
            return 2
    except BaseException:  # the worker's own start meets it and reports it properly
        return 0
    return 0


def post_worker_init(worker: Any) -> None:
    """In each worker, gevent-patched and with the app loaded: the error log quotes a bad
    request line whole, so its query string (the webhook's `?token=`) is stripped."""
    from zapa_bridge.web.serving import hide_query_strings

    hide_query_strings(worker.log.error_log)
