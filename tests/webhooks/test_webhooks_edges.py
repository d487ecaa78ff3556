"""Deliveries the store cannot hold, odd signature headers, broken or slow bodies, health."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa
from test_webhooks_receive import paid_invoice_event, stored_count
from webhook_helpers import signed
from webhook_support import Daemon

from creditctl.errors import InvalidEvent, InvalidSignature
from creditctl.webhooks.receive import receive


def _raw(evt: dict) -> str:
    return json.dumps(evt)


def _unstorable(case: str) -> bytes:
    evt = paid_invoice_event()
    if case == "created past year 9999":
        evt["created"] = 10**30
    elif case == "api_version an object":
        evt["api_version"] = {"version": "2026-10-28"}
    elif case == "id longer than the column":
        evt["id"] = "evt_" + "x" * 300
    elif case == "JSON nested 1000 deep":
        return (_raw(evt)[:-1] + ', "deep": ' + "[" * 1000 + "]" * 1000 + "}").encode()
    elif case == "a lone surrogate":
        evt["data"]["object"]["customer"] = "cus_\ud800"
    elif case == "a NUL character":
        evt["data"]["object"]["customer"] = "cus_\u0000"
    return _raw(evt).encode()


UNSTORABLE = [
    "created past year 9999",
    "api_version an object",
    "id longer than the column",
    "JSON nested 1000 deep",
    "a lone surrogate",
    "a NUL character",
]


@pytest.mark.parametrize("case", UNSTORABLE)
def test_a_signed_event_the_store_cannot_hold_is_refused(engine, config, case):
    with pytest.raises(InvalidEvent) as refused:
        receive(engine, *signed(_unstorable(case)), config)
    assert "\n" not in refused.value.message
    assert stored_count(engine) == 0


@pytest.mark.parametrize(
    "header",
    ["t=\u00b2,v1=00", "t=1,v1=\u00e9", "t=" + "9" * 5000 + ",v1=00", "t=\u0663,v1=00"],
    ids=["superscript digit", "non-ASCII signature", "5000 digits", "Arabic-Indic digit"],
)
def test_a_malformed_signature_header_is_a_bad_signature(engine, config, header):
    body, good = signed(paid_invoice_event())
    if "v1=\u00e9" in header:  # a current timestamp, so the signature itself is compared
        header = good.split(",")[0] + ",v1=\u00e9"
    with pytest.raises(InvalidSignature):
        receive(engine, body, header, config)
    assert stored_count(engine) == 0


def _answer(conn: socket.socket) -> bytes:
    """One whole HTTP answer (headers and the Content-Length body) from a raw connection."""
    answer = b""
    while True:
        head, ended, body = answer.partition(b"\r\n\r\n")
        if ended:
            length = head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0]
            if len(body) >= int(length):
                return answer
        chunk = conn.recv(4096)
        assert chunk, answer
        answer += chunk


def _log_lines(daemon: Daemon, needle: str) -> list[str]:
    return [line for line in daemon.output().splitlines() if needle in line]


def test_the_daemon_answers_400_with_one_line_for_unstorable_and_malformed(engine, daemon):
    for case in UNSTORABLE:
        status, answer = daemon.post(*signed(_unstorable(case)))
        assert status == 400, (case, answer)
    body, _ = signed(paid_invoice_event())
    assert daemon.post(body, "t=\u00b2,v1=00")[0] == 400
    assert stored_count(engine) == 0
    refused = _log_lines(daemon, "webhook refused:")
    assert len(refused) == len(UNSTORABLE) + 1
    assert " ERROR " not in daemon.output() and "Traceback" not in daemon.output()


def test_a_client_gone_mid_body_is_one_quiet_line(engine, daemon):
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as conn:
        conn.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1=0\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"x" * 100
        )
    # The next request is answered after the dropped one was logged (one connection each).
    deadline = time.monotonic() + 30
    while not _log_lines(daemon, "client disconnected"):
        assert time.monotonic() < deadline, daemon.output()
        time.sleep(0.1)
    assert len(_log_lines(daemon, "client disconnected")) == 1
    assert "Traceback" not in daemon.output() and " ERROR " not in daemon.output()
    assert stored_count(engine) == 0


def test_a_body_slower_than_the_deadline_is_refused(engine, database_url, tmp_path):
    slow = Daemon(database_url, tmp_path, env={"CREDITCTL_WEBHOOK_BODY_TIMEOUT": "1"})
    try:
        with socket.create_connection(("127.0.0.1", slow.port), timeout=30) as conn:
            conn.sendall(
                b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1=0\r\n"
                b"Content-Length: 1000\r\n\r\n" + b"x" * 100
            )
            answer = _answer(conn)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"body not received within 1 s" in answer
    finally:
        slow.stop()
    assert len(_log_lines(slow, "webhook refused: body not received within 1 s")) == 1
    assert "Traceback" not in slow.output()
    assert stored_count(engine) == 0


def test_healthz_says_unavailable_without_the_error_text(engine, database_url, tmp_path):
    running = Daemon(database_url, tmp_path)
    try:
        with engine.begin() as conn:  # the schema broken under the running daemon
            conn.execute(sa.text("DROP TABLE webhook_events"))
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"{running.url}/healthz", timeout=30)
        assert answer.value.code == 503
        assert json.loads(answer.value.read()) == {
            "status": "unavailable",
            "database": "unavailable",
        }
    finally:
        running.stop()
    [logged] = _log_lines(running, "health check:")
    assert "WARNING" in logged and "creditctl init" in logged
