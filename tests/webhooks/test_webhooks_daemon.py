"""The daemon as a real process on loopback: signed deliveries, refusals, health, clean stop."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from helpers import run_creditctl
from test_webhooks_receive import paid_invoice_event, plan_grants, stored_count
from webhook_helpers import SECRET, signed
from webhook_support import Daemon

from creditctl.ledger.audit import verify as audit_verify
from creditctl.webhooks.events import show_event


def test_a_first_paid_invoice_delivered_three_times_at_once_grants_once(
    engine, alice, synced, daemon
):
    evt = paid_invoice_event()
    answers = []
    gate = threading.Barrier(3)

    def deliver() -> None:
        body, header = signed(evt)
        gate.wait()
        answers.append(daemon.post(body, header))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(status for status, _ in answers) == [200, 200, 200]
    assert sorted(body["repeat"] for _, body in answers) == [False, True, True]
    assert plan_grants(engine) == [1000]
    assert show_event(engine, evt["id"])["attempts"] == 1
    assert audit_verify(engine)["ok"]


def test_forged_stale_and_oversized_deliveries_are_refused(engine, alice, synced, daemon):
    evt = paid_invoice_event()
    body, header = signed(evt, secret="whsec_forger")
    assert daemon.post(body, header)[0] == 400
    assert daemon.post(*signed(evt, timestamp=int(time.time()) - 3600))[0] == 400
    assert daemon.post(body, None)[0] == 400
    huge = json.dumps({**evt, "padding": "x" * 300_000}).encode()
    assert daemon.post(*signed(huge))[0] == 413
    assert stored_count(engine) == 0
    assert plan_grants(engine) == []
    log = daemon.output()
    assert SECRET not in log and header.split("v1=")[1] not in log


def test_a_streamed_body_over_the_limit_is_refused(engine, daemon):
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as conn:
        conn.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nStripe-Signature: t=1,v1=0\r\n\r\n"
        )
        chunk = b"x" * 100_000
        for _ in range(4):
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.sendall(b"0\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 413")
    assert stored_count(engine) == 0


def test_healthz_reports_the_database_and_the_last_event(engine, alice, synced, daemon):
    import urllib.request

    with urllib.request.urlopen(f"{daemon.url}/healthz", timeout=5) as response:
        assert json.loads(response.read()) == {
            "status": "ok",
            "database": "ok",
            "last_event_received_at": None,
        }
    daemon.post(*signed(paid_invoice_event()))
    with urllib.request.urlopen(f"{daemon.url}/healthz", timeout=5) as response:
        assert json.loads(response.read())["last_event_received_at"] is not None


def test_sigterm_finishes_the_request_in_flight_then_exits_cleanly(
    engine, alice, synced, database_url, tmp_path
):
    running = Daemon(database_url, tmp_path)
    body, header = signed(paid_invoice_event())
    with socket.create_connection(("127.0.0.1", running.port), timeout=20) as conn:
        conn.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nStripe-Signature: "
            + header.encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body[:100]
        )
        time.sleep(0.3)
        running.process.terminate()
        time.sleep(0.5)
        conn.sendall(body[100:])
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert running.process.wait(timeout=40) == 0
    assert plan_grants(engine) == [1000]
    assert "daemon stopped" in running.output()


def test_the_daemon_refuses_to_start_without_a_webhook_secret(database_url, tmp_path):
    result = run_creditctl(
        "daemon", "--port", "1", database_url=database_url, cwd=tmp_path, timeout=30
    )
    assert result.returncode == 7
    assert result.stderr.strip() == (
        "error: STRIPE_WEBHOOK_SECRET is not set; the webhook endpoint cannot verify Stripe's "
        "signatures (comma-separate several while rotating)"
    )


def test_no_http_and_no_scheduler_together_is_a_usage_error(database_url, tmp_path):
    result = run_creditctl(
        "daemon", "--no-http", "--no-scheduler", database_url=database_url, cwd=tmp_path, timeout=30
    )
    assert result.returncode == 2
    assert "leave nothing to run" in result.stderr


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_scheduler_only_mode_stops_on_a_signal(database_url, tmp_path, signum):
    import signal
    import subprocess

    from helpers import cli_env, creditctl_executable

    process = subprocess.Popen(
        [creditctl_executable(), "daemon", "--no-http"],
        cwd=tmp_path,
        env=cli_env(database_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Signal once it says it runs (its handlers are in), not after a guessed delay.
    started = []
    for line in process.stdout:
        started.append(line)
        if "scheduler running without HTTP" in line:
            break
    process.send_signal(getattr(signal, signum))
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, "".join(started) + output
    assert "daemon stopped" in output
