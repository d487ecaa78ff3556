"""Customers and the subscription lifecycle against localstripe.

localstripe has no prices: a localstripe plan id stands in for the plan's price id.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from creditctl.billing.gateway import Gateway
from creditctl.db.tables import plans


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _json(result):
    return json.loads(_ok(result).stdout)


def _customer(cli, env, user="u1"):
    return _json(cli("stripe", "customer", user, "--json", env=env))


def test_a_customer_is_created_once_and_found_by_its_id(cli, localstripe_env, localstripe_client):
    _ok(cli("users", "add", "Alice@Example.com", "--id", "u1", "--name", "Alice"))
    first = _customer(cli, localstripe_env)
    second = _customer(cli, localstripe_env)
    assert first["action"] == "created" and second["action"] == "stored"
    assert first["customer_id"] == second["customer_id"]
    (customer,) = localstripe_client.v1.customers.list().data
    assert (customer.id, customer.email, customer.name) == (
        first["customer_id"],
        "Alice@Example.com",
        "Alice",
    )
    assert customer.metadata.to_dict() == {"creditctl_user_id": "u1"}
    found = _json(cli("users", "search", first["customer_id"], "--json"))
    assert [u["id"] for u in found] == ["u1"]


def test_an_existing_customer_with_the_same_email_and_metadata_is_reused(
    cli, localstripe_env, localstripe_client
):
    _ok(cli("users", "add", "bob@example.com", "--id", "u2"))
    customers = localstripe_client.v1.customers
    customers.create(params={"email": "bob@example.com", "metadata": {"creditctl_user_id": "x"}})
    mine = customers.create(
        params={"email": "bob@example.com", "metadata": {"creditctl_user_id": "u2"}}
    )
    reused = _customer(cli, localstripe_env, "u2")
    assert reused == {"user_id": "u2", "customer_id": mine.id, "action": "reused"}
    assert len(customers.list(params={"email": "bob@example.com"}).data) == 2


def _pro_plan_in_localstripe(client, engine) -> str:
    product = client.v1.products.create(params={"name": "Pro", "metadata": {"plan": "pro"}})
    plan = client.v1.plans.create(
        params={
            "id": "creditctl_pro_monthly",
            "amount": 1900,
            "currency": "usd",
            "interval": "month",
            "product": product.id,
        }
    )
    with engine.begin() as conn:
        conn.execute(
            plans.update()
            .where(plans.c.name == "pro")
            .values(stripe_product_id=product.id, stripe_price_id=plan.id)
        )
    return plan.id


def _subscribe(client, customer_id: str, plan_id: str):
    """What a completed Checkout leaves in Stripe: a paying customer with a subscription."""
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer_id})
    client.v1.customers.update(
        customer_id, params={"invoice_settings": {"default_payment_method": method.id}}
    )
    return client.v1.subscriptions.create(
        params={"customer": customer_id, "items": [{"plan": plan_id}]}
    )


def test_subscription_lifecycle(cli, engine, localstripe_env, localstripe_client):
    _ok(cli("users", "add", "carol@example.com", "--id", "u3"))
    plan_id = _pro_plan_in_localstripe(localstripe_client, engine)
    customer = _customer(cli, localstripe_env, "u3")["customer_id"]
    created = _subscribe(localstripe_client, customer, plan_id)
    assert created.status == "active"

    shown = _json(cli("subscriptions", "show", "u3", "--remote", "--json", env=localstripe_env))
    assert shown["local"] == []
    (remote,) = shown["remote"]
    assert (remote["subscription_id"], remote["plan"], remote["status"]) == (
        created.id,
        "pro",
        "active",
    )
    assert remote["current_period_end"] is not None

    cancel = _json(cli("subscriptions", "cancel", "u3", "--json", env=localstripe_env))
    assert (cancel["status"], cancel["cancel_at_period_end"]) == ("active", True)
    assert localstripe_client.v1.subscriptions.retrieve(created.id).cancel_at_period_end is True
    account = _json(cli("account", "u3", "--json"))
    assert account["subscription"]["status"] == "active (cancels at period end)"
    assert account["subscription"]["ends_at"] == remote["current_period_end"]
    assert account["plan"]["name"] == "pro"

    resumed = _json(cli("subscriptions", "resume", "u3", "--json", env=localstripe_env))
    assert resumed["cancel_at_period_end"] is False
    assert localstripe_client.v1.subscriptions.retrieve(created.id).cancel_at_period_end is False
    again = cli("subscriptions", "resume", "u3", env=localstripe_env)
    assert again.exit_code == 5
    assert "no pending cancel, so there is nothing to resume" in again.stderr
    account = _json(cli("account", "u3", "--json"))
    assert account["subscription"]["renews_at"] == remote["current_period_end"]
    text = _ok(cli("account", "u3"))
    assert remote["current_period_end"] in text.stdout

    ended = _json(cli("subscriptions", "cancel", "u3", "--now", "--json", env=localstripe_env))
    assert (ended["status"], ended["user_plan"]) == ("canceled", "free")
    assert localstripe_client.v1.subscriptions.retrieve(created.id).status == "canceled"
    (local,) = _json(cli("subscriptions", "show", "u3", "--json"))["local"]
    assert (local["status"], local["plan"]) == ("canceled", "pro")
    gone = cli("subscriptions", "cancel", "u3", env=localstripe_env)
    assert gone.exit_code == 4
    assert gone.stderr == (
        "error: user u3 has no live Stripe subscription; start one with "
        "`creditctl stripe checkout u3 --plan PLAN`\n"
    )
    with engine.connect() as conn:
        audited = (
            conn.execute(sa.text("SELECT action FROM audit_log WHERE user_id = 'u3' ORDER BY id"))
            .scalars()
            .all()
        )
    assert audited[-3:] == ["subscription.cancel", "subscription.resume", "subscription.cancel"]


def test_listing_follows_every_page(localstripe, localstripe_env, localstripe_client):
    customers = localstripe_client.v1.customers
    customer = customers.create(params={"email": "dave@example.com"})
    product = localstripe_client.v1.products.create(params={"name": "Pro"})
    plan = localstripe_client.v1.plans.create(
        params={"amount": 0, "currency": "usd", "interval": "month", "product": product.id}
    )
    made = {
        localstripe_client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"plan": plan.id}]}
        ).id
        for _ in range(5)
    }
    localstripe_client.v1.subscriptions.cancel(sorted(made)[0])
    gateway = Gateway(
        api_key=localstripe_env["STRIPE_API_KEY"],
        api_version="2026-10-28.endive",
        api_base=localstripe,
        page_size=2,
    )
    listed = gateway.subscriptions_of(customer.id)
    assert sorted(s["id"] for s in listed) == sorted(made)  # canceled ones too
    for n in range(5):
        customers.create(params={"email": "same@example.com", "metadata": {"n": str(n)}})
    assert len(gateway.customers_by_email("same@example.com")) == 5
