"""No interleaving strands a paid invoice: real daemon processes, concurrent and SIGKILLed.

The invoices here name a price known only by id (made in the dashboard): only the
subscription's own event maps it to a plan, so an invoice that comes first has to wait.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import new_user
from test_webhooks_receive import plan_grants
from webhook_helpers import (
    SECRET,
    event,
    invoice,
    next_id,
    now_utc,
    period,
    price,
    signed,
    subscription,
)
from webhook_support import Daemon

from creditctl.clock import utcnow
from creditctl.ledger.audit import verify as audit_verify
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.events import list_events
from creditctl.webhooks.processing import replay

DASHBOARD = "price_dashboard_only"
postgresql_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _pair(user_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """customer.subscription.created and its invoice.paid, for one user's new subscription."""
    sub_id, customer = next_id("sub"), next_id("cus")
    start, end = period(now_utc() - timedelta(days=1))
    shared = {"sub_id": sub_id, "customer": customer, "start": start, "end": end}
    sub = subscription(
        "basil",
        price_obj=price(DASHBOARD, lookup_key="creditctl_pro"),
        user_id=user_id,
        **shared,
    )
    paid = invoice("basil", price_id=DASHBOARD, user_id=user_id, **shared)
    created = now_utc()
    return (
        event("customer.subscription.created", sub, created=created),
        event("invoice.paid", paid, created=created + timedelta(seconds=1)),
    )


def _post(daemon: Daemon, evt: dict[str, Any]) -> int:
    """The answer's status; 0 when the connection broke (the daemon was killed)."""
    try:
        return daemon.post(*signed(evt))[0]
    except OSError:
        return 0


def _deliver_until_accepted(daemons: list[Daemon], evt: dict[str, Any]) -> None:
    """Stripe's redelivery: the same event again while the answer is not 2xx (bounded)."""
    for attempt in range(20):
        if _post(daemons[attempt % len(daemons)], evt) == 200:
            return
    raise AssertionError(f"{evt['id']} was never accepted")


def _granted_once(engine, users: list[str]) -> dict[str, list[int]]:
    """Users whose paid invoice did not give exactly one period's plan credits."""
    return {u: got for u in users if (got := plan_grants(engine, u)) != [1000]}


def _waiting(engine) -> list[tuple[str, str]]:
    return [(e["id"], e["status"]) for e in list_events(engine) if e["status"] != "processed"]


def test_duplicate_deliveries_to_two_daemons_grant_every_paid_invoice_once(
    engine, policy, database_url, tmp_path
):
    users = [f"racer{i}" for i in range(12)]
    for user_id in users:
        new_user(engine, policy, user_id)
    deliveries = [evt for user_id in users for evt in _pair(user_id) for _ in range(3)]
    random.Random(20261124).shuffle(deliveries)
    daemons = [Daemon(database_url, tmp_path) for _ in range(2)]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    lambda n: _deliver_until_accepted(
                        daemons[n % 2 :] + daemons[: n % 2], deliveries[n]
                    ),
                    range(len(deliveries)),
                )
            )
        # Every delivery answered: nothing may be left for a retry to find.
        assert _granted_once(engine, users) == {}
        assert _waiting(engine) == []
    finally:
        for running in daemons:
            assert running.stop() == 0
    assert audit_verify(engine)["ok"]


class GatedStripe:
    """Stripe's price API, answering the first price lookup only once `gate` is set.

    The price it returns maps to no plan (no lookup key, no metadata), and products are
    unknown, so an invoice that asked for it can only take its plan from the subscription.
    """

    def __init__(self) -> None:
        self.asked, self.gate = threading.Event(), threading.Event()
        stripe = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = None
                if self.path.split("?")[0].startswith(f"/v1/prices/{DASHBOARD}"):
                    first = not stripe.asked.is_set()
                    stripe.asked.set()
                    if first:  # bounded well inside the daemon's 5 s wait on Stripe
                        stripe.gate.wait(4)
                    found = {**price(DASHBOARD), "product": "prod_unknown"}
                body = json.dumps(
                    found or {"error": {"type": "invalid_request_error", "message": "No such"}}
                ).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@postgresql_only
def test_an_invoice_deciding_while_its_subscription_commits_is_not_stranded(
    engine, policy, database_url, tmp_path
):
    """The invoice has looked for the subscription (none yet) and asks Stripe for its price;
    meanwhile, on another daemon, the subscription's event is processed and answered."""
    new_user(engine, policy, "racer")
    created, paid = _pair("racer")
    stripe = GatedStripe()
    env = {"STRIPE_API_KEY": "sk_test_gated_SECRET", "STRIPE_API_BASE": stripe.url}
    daemons = [Daemon(database_url, tmp_path, env=env) for _ in range(2)]
    try:
        answers: list[int] = []
        invoice_delivery = threading.Thread(target=lambda: answers.append(_post(daemons[0], paid)))
        invoice_delivery.start()
        assert stripe.asked.wait(30), "the invoice never asked Stripe for its price"
        assert _post(daemons[1], created) == 200
        stripe.gate.set()
        invoice_delivery.join(60)
        assert answers == [200]
        assert _granted_once(engine, ["racer"]) == {}
        assert _waiting(engine) == []
    finally:
        stripe.stop()
        for running in daemons:
            running.stop()


def _lock_waiters(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'creditctl' AND wait_event_type = 'Lock'"
            )
        ).scalar_one()


def _until(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@postgresql_only
@pytest.mark.parametrize("blocked", ["the waiting invoice", "the user"])
def test_a_daemon_killed_while_recording_the_subscription_strands_no_invoice(
    engine, policy, database_url, tmp_path, blocked
):
    """SIGKILL once the subscription's delivery is stuck on a row another session holds:
    the invoice's stored row (after the subscription's commit, where the invoice used to be
    revisited) or the user's row (inside the subscription's transaction)."""
    new_user(engine, policy, "victim")
    created, paid = _pair("victim")
    first = Daemon(database_url, tmp_path)
    assert _post(first, paid) == 200  # waits for its subscription
    table, key = (
        ("webhook_events", paid["id"])
        if blocked == "the waiting invoice"
        else (
            "users",
            "victim",
        )
    )
    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(sa.text(f"SELECT 1 FROM {table} WHERE id = :k FOR UPDATE"), {"k": key})
    answers: list[int] = []
    delivery = threading.Thread(target=lambda: answers.append(_post(first, created)))
    delivery.start()
    _until(lambda: answers or _lock_waiters(engine) > 0)
    first.process.kill()
    first.process.wait(30)
    transaction.rollback()
    holder.close()
    delivery.join(60)
    # Stripe redelivers both events to a new daemon; the retry job runs a while later.
    second = Daemon(database_url, tmp_path)
    try:
        _deliver_until_accepted([second], created)
        _deliver_until_accepted([second], paid)
    finally:
        assert second.stop() == 0
    config = WebhookConfig(secrets=(SECRET,))
    replay(engine, config, failed=True, now=utcnow() + timedelta(minutes=5))
    assert _granted_once(engine, ["victim"]) == {}
    assert _waiting(engine) == []
    assert audit_verify(engine)["ok"]
