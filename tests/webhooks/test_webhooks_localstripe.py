"""End to end: localstripe delivers signed webhooks to a running daemon; backfill reads its events.

The plan is made "in the dashboard" (not by `plans sync`): it maps to the local plan by its
product's metadata.plan, and the customer maps to the user by its metadata, both read from
localstripe by the daemon.
"""

from __future__ import annotations

import json
import time

from test_webhooks_receive import plan_grants
from webhook_support import LOCALSTRIPE_KEY, Daemon, register_webhook

from creditctl.ledger.balances import balance

EVENTS = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "customer.deleted",
]


def _dashboard_plan(client) -> str:
    product = client.v1.products.create(params={"name": "Pro", "metadata": {"plan": "pro"}})
    plan = client.v1.plans.create(
        params={
            "id": "dashboard_pro",
            "amount": 1900,
            "currency": "usd",
            "interval": "month",
            "product": product.id,
        }
    )
    return plan.id


def _subscribe(client, user_id: str, plan_id: str):
    customer = client.v1.customers.create(
        params={"email": f"{user_id}@example.com", "metadata": {"creditctl_user_id": user_id}}
    )
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": method.id}}
    )
    return client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"plan": plan_id}]}
    )


def _until(check, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_localstripe_webhooks_drive_plan_and_credits(
    engine, alice, database_url, tmp_path, localstripe, localstripe_client, cli
):
    daemon = Daemon(
        database_url,
        tmp_path,
        env={"STRIPE_API_KEY": LOCALSTRIPE_KEY, "STRIPE_API_BASE": localstripe},
    )
    try:
        register_webhook(localstripe, "creditctl", f"{daemon.url}/webhooks/stripe", EVENTS)
        subscription = _subscribe(localstripe_client, "alice", _dashboard_plan(localstripe_client))
        _until(lambda: plan_grants(engine) == [1000] and balance(engine, "alice").plan == "pro")
        localstripe_client.v1.subscriptions.cancel(subscription.id)
        _until(lambda: balance(engine, "alice").plan == "free")
        assert plan_grants(engine) == [1000]
        assert balance(engine, "alice").available >= 1000
    finally:
        assert daemon.stop() == 0
    events = json.loads(cli("webhooks", "list", "--json").stdout)
    assert {e["type"] for e in events} >= {
        "customer.subscription.created",
        "invoice.payment_succeeded",
        "customer.subscription.deleted",
    }
    assert {e["status"] for e in events} == {"processed"}
    audit = cli("audit", "verify")
    assert audit.exit_code == 0, audit.output


def test_backfill_stores_and_processes_missed_events_once(
    engine, alice, localstripe, localstripe_client, cli
):
    _subscribe(localstripe_client, "alice", _dashboard_plan(localstripe_client))
    env = {"STRIPE_API_KEY": LOCALSTRIPE_KEY, "STRIPE_API_BASE": localstripe}
    first = cli("webhooks", "backfill", "--since", "2020-01-01", "--json", env=env)
    assert first.exit_code == 0, first.output
    counts = json.loads(first.stdout)
    assert counts["listed"] == counts["stored"] > 0 and counts["failed"] == 0
    assert counts["processed"] >= 2
    assert plan_grants(engine) == [1000]
    assert balance(engine, "alice").plan == "pro"
    again = json.loads(
        cli("webhooks", "backfill", "--since", "2020-01-01", "--json", env=env).stdout
    )
    assert again["stored"] == 0 and again["already_stored"] == counts["listed"]
    assert again["processed"] == 0
    assert plan_grants(engine) == [1000]
    assert cli("audit", "verify").exit_code == 0
