"""What reaches the logs: a real worker and the web app under gunicorn over real HTTP carry
traffic with distinctive texts, numbers and tokens; then their log files and this process's
own log records are read for any of them, and for the structure of the lines."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import pytest
import requests

from tests.helpers import wait_until
from tests.zapw_stub import ZapwStub
from workers.tasks import send_message, services
from zapa_bridge.logs import line
from zapa_bridge.outbound.status_store import MessageStatus
from zapa_bridge.redaction import mask_phone

pytestmark = pytest.mark.slow

WEBHOOK_PATH = "/api/v1/webhooks/whatsapp"
API = "/api/v1/integration"
WEBHOOK_TOKEN = os.environ["ZAPA_WEBHOOK_TOKEN"]
ADMIN_TOKEN = os.environ["ZAPA_ADMIN_TOKEN"]
BAD_TOKEN = "not-the-token-7f3a9c"

INBOUND_TEXT = "quokka whispers about the mango orchard"
INBOUND_FROM = "5511911223344"
SENT_TEXT = "narwhal ocelot reply with a secret"
SENT_TO = "5521955667788"
DEAD_TEXT = "axolotl letter that will never arrive"
DEAD_TO = "5531977889900"
SERVICE_TEXT = "pangolin note queued by a service"
SERVICE_TO = "5541966554433"

SECRETS = {
    "inbound text": INBOUND_TEXT, "sent text": SENT_TEXT, "dead text": DEAD_TEXT,
    "service text": SERVICE_TEXT, "inbound number": INBOUND_FROM, "sent number": SENT_TO,
    "dead number": DEAD_TO, "service number": SERVICE_TO, "webhook token": WEBHOOK_TOKEN,
    "admin token": ADMIN_TOKEN, "wrong webhook token": BAD_TOKEN,
}
RECEIVED = {
    "sessionId": "s1", "origin": "1234567890", "eventType": "message.received",
    "timestamp": 1795599514484,
    "data": {"from": f"{INBOUND_FROM}@s.whatsapp.net", "to": "1234567890:1@s.whatsapp.net",
             "messageId": "3EB0C0FFEE0001", "timestamp": 1795599514000, "isGroup": False,
             "type": "text", "text": INBOUND_TEXT},
}
EVENT_LINE = re.compile(r"event=[\w.]+( [\w]+=(\"(\\.|[^\"])*\"|\S+))*$")


def wait_status(message_id: str, status: MessageStatus) -> None:
    wait_until(lambda: (r := services().store.get(message_id)) is not None
               and r.status == status, what=f"{message_id} {status}")


def admin_send(base_url: str, **fields: str) -> str:
    answer = requests.post(f"{base_url}{API}/messages", json=fields, timeout=5,
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def lines_with(log: str, needle: str) -> list[str]:
    return [line for line in log.splitlines() if needle in line]


def event_part(line: str) -> str:
    """The `event=... key=value` part of a log line, after the logger's own prefix."""
    return line[line.index("event="):]


def test_no_text_token_or_full_number_reaches_any_log_and_lines_are_structured(
        start_worker, start_web, zapw: ZapwStub, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    zapw.add_session("s1")
    worker = start_worker()
    web = start_web()

    # A WhatsApp user writes (the echo handler answers with the same text)...
    answer = requests.post(f"{web.url}{WEBHOOK_PATH}", json=RECEIVED, timeout=5,
                           params={"token": WEBHOOK_TOKEN})
    assert answer.json() == {"status": "accepted"}
    # ...someone tries a wrong token...
    refused = requests.post(f"{web.url}{WEBHOOK_PATH}", json=RECEIVED, timeout=5,
                            params={"token": BAD_TOKEN})
    assert refused.status_code == 401
    # ...an operator sends one message that goes and one that becomes a dead letter...
    sent_id = admin_send(web.url, to=SENT_TO, text=SENT_TEXT, session="s1")
    dead_id = admin_send(web.url, to=DEAD_TO, text=DEAD_TEXT, session="ghost")
    # ...and a service in this process queues one.
    service_id = send_message.delay(to=SERVICE_TO, text=SERVICE_TEXT, session="s1").id

    wait_status(sent_id, MessageStatus.SENT)
    wait_status(dead_id, MessageStatus.FAILED)
    wait_status(service_id, MessageStatus.SENT)
    wait_until(lambda: [s for s in zapw.sent_to("s1") if s.body["to"] == INBOUND_FROM],
               what="the echo reply at the bridge")
    wait_until(lambda: lines_with(web.log(), "event=inbound.received")
               and lines_with(worker.log(), f"event=message.failed message_id={dead_id}")
               and lines_with(web.log(), "event=webhook.refused"),
               what="the worker's and web's lines")

    logs = {"worker": worker.log(), "web": web.log(), "test process": caplog.text}
    leaks = sorted((where, what) for where, log in logs.items()
                   for what, secret in SECRETS.items() if secret in log)
    assert leaks == []

    # Sends are logged once each, structured, with their id, session and masked number.
    worker_log = logs["worker"]
    for message_id, to in ((sent_id, SENT_TO), (service_id, SERVICE_TO)):
        [sent_line] = lines_with(worker_log, f"event=message.sent message_id={message_id}")
        assert EVENT_LINE.fullmatch(event_part(sent_line)), sent_line
        assert " session=s1 " in sent_line
        assert f" to={mask_phone(to)} " in sent_line
    # The web process takes the message in (and logs it), in the webhook's own call.
    [inbound_line] = lines_with(logs["web"], "event=inbound.received")
    assert EVENT_LINE.fullmatch(event_part(inbound_line)), inbound_line
    assert "message_id=3EB0C0FFEE0001 session=s1 " in inbound_line
    assert f" sender={mask_phone(INBOUND_FROM)} " in inbound_line
    [dead_line] = lines_with(worker_log, f"event=message.failed message_id={dead_id}")
    assert EVENT_LINE.fullmatch(event_part(dead_line)), dead_line

    # The web logs the refusal without the token, and its access log drops query strings.
    [refusal] = lines_with(logs["web"], "event=webhook.refused")
    assert 'reason="invalid token"' in refusal
    assert lines_with(logs["web"], f'"POST {WEBHOOK_PATH}" 401')
    assert lines_with(logs["web"], f'"POST {WEBHOOK_PATH}" 200')
    assert "token=" not in logs["web"]

    # This process logged the queued message as a structured line, number masked.
    [queued] = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith(f"event=message.queued message_id={service_id}")]
    assert EVENT_LINE.fullmatch(queued), queued
    assert f"to={mask_phone(SERVICE_TO)}" in queued and "session=s1" in queued


def test_dead_letter_line_names_the_session_of_the_failed_send(start_worker: Any):
    worker = start_worker()
    dead_id = send_message.delay(to=DEAD_TO, text=DEAD_TEXT, session="ghost").id
    wait_status(dead_id, MessageStatus.FAILED)
    [dead_line] = wait_until(
        lambda: lines_with(worker.log(), f"event=message.failed message_id={dead_id}"),
        what="the dead letter's line")
    assert " session=ghost" in dead_line


def test_web_logs_the_message_it_queues_from_the_admin_api(start_web: Any):
    web = start_web()
    message_id = admin_send(web.url, to=SENT_TO, text=SENT_TEXT, session="s1")
    # The line is written in the request's own thread, before the answer.
    assert lines_with(web.log(), f"event=message.queued message_id={message_id}")


# -- the line itself -----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "written"), [
    ("s1\nevent=admin.sign_in", '"s1\\nevent=admin.sign_in"'),
    ("s1\revent=forged", '"s1\\revent=forged"'),
    ("\x1b[2J\x1b[31mred", '"\\x1b[2J\\x1b[31mred"'),
    ("a\x00b\x7fc\x85d", '"a\\x00b\\x7fc\\x85d"'),
    ("tab\there", '"tab\\there"'),
    ("line\u2028sep\u2029para", '"line\\u2028sep\\u2029para"'),
    ("bidi\u202eevil", '"bidi\\u202eevil"'),
    ("tag\U000e0041", '"tag\\U000e0041"'),
    ('say "hi" \\o/', '"say \\"hi\\" \\\\o/"'),
    ("ação 日本 😀", '"ação 日本 😀"'),
    ("s1\n", '"s1\\n"'),
])
def test_a_value_never_puts_a_control_character_in_the_line(value, written):
    """Log injection: a session id or an error text from outside cannot end the line, forge
    another (`\\r`, U+2028), steer a terminal (ESC) or reorder what a reader sees."""
    logged = line("webhook.refused", session=value, remote="10.0.0.1")

    assert logged == f"event=webhook.refused session={written} remote=10.0.0.1"
    assert logged.isprintable()
    assert EVENT_LINE.match(logged)


def test_a_bare_value_is_written_unquoted():
    assert line("message.sent", message_id="m-1:2", to="55119****7777", attempt=2) == \
        "event=message.sent message_id=m-1:2 to=55119****7777 attempt=2"
