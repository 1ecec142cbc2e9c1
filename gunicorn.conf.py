"""gunicorn settings for the `web` process (see Procfile)."""

import os

bind = os.environ.get("ZAPA_WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("ZAPA_WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 10
accesslog = "-"
# %(U)s is the path without its query string: the webhook token never reaches the log.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
# A control socket at one shared default path would be fought over by every server on
# the host; nothing here uses it.
control_socket_disable = True
