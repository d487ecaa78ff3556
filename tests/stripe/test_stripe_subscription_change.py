"""`subscriptions change` against the recorded-response server: parameters and credit effects."""

from __future__ import annotations

import json

import pytest

from creditctl.billing.subscriptions import apply_stripe_subscription
from creditctl.ledger.transactions import run_write


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def subscribed(cli, recorded, recorded_env, engine):
    """u1 on pro: synced plans, a Stripe subscription, and its paid first period credited."""
    assert cli("users", "add", "a@example.com", "--id", "u1").exit_code == 0
    assert cli("plans", "sync", env=recorded_env).exit_code == 0
    customer = _json(cli("stripe", "customer", "u1", "--json", env=recorded_env))["customer_id"]
    prices = {p["lookup_key"]: p["id"] for p in recorded.objects("price")}
    sub = recorded.add_subscription(customer, prices["creditctl_pro"])
    from creditctl.clock import utcnow

    run_write(
        engine,
        lambda conn: apply_stripe_subscription(  # what invoice.paid will do
            conn, sub, user_id="u1", actor="evt_paid", now=utcnow(), paid=True
        ),
    )
    recorded.clear_requests()
    return sub, prices


def test_upgrade_sends_the_new_price_and_grants_the_difference(
    cli, recorded, recorded_env, subscribed
):
    sub, prices = subscribed
    before = _json(cli("credits", "balance", "u1", "--json"))["available"]
    result = _json(
        cli(
            "subscriptions",
            "change",
            "u1",
            "--plan",
            "pro_plus",
            "--proration",
            "always_invoice",
            "--json",
            env=recorded_env,
        )
    )
    (post,) = recorded.requests("POST", f"/v1/subscriptions/{sub['id']}")
    assert post.params == {
        "items[0][id]": sub["items"]["data"][0]["id"],
        "items[0][price]": prices["creditctl_pro_plus"],
        "proration_behavior": "always_invoice",
        "metadata[creditctl_user_id]": "u1",
        "metadata[plan]": "pro_plus",
    }
    assert post.idempotency_key.startswith("creditctl-subscription.change-")
    assert (result["plan"], result["granted"], result["user_plan"]) == (
        "pro_plus",
        4000,
        "pro_plus",
    )
    after = _json(cli("credits", "balance", "u1", "--json"))
    assert (after["available"], after["plan"]) == (before + 4000, "pro_plus")

    again = cli("subscriptions", "change", "u1", "--plan", "pro_plus", env=recorded_env)
    assert again.exit_code == 5
    assert "is already on plan pro_plus" in again.stderr


def test_downgrade_keeps_credits_and_plan_until_the_next_period(
    cli, recorded, recorded_env, subscribed
):
    _json(cli("subscriptions", "change", "u1", "--plan", "pro_plus", "--json", env=recorded_env))
    before = _json(cli("credits", "balance", "u1", "--json"))["available"]
    down = _json(
        cli(
            "subscriptions",
            "change",
            "u1",
            "--plan",
            "pro",
            "--proration",
            "none",
            "--json",
            env=recorded_env,
        )
    )
    assert (down["plan"], down["granted"], down["user_plan"]) == ("pro", 0, "pro_plus")
    assert recorded.requests("POST")[-1].params["proration_behavior"] == "none"
    assert _json(cli("credits", "balance", "u1", "--json"))["available"] == before
    back = _json(
        cli("subscriptions", "change", "u1", "--plan", "pro_plus", "--json", env=recorded_env)
    )
    assert back["granted"] == 0  # the period already got pro_plus's credits


def test_change_refuses_a_bad_proration_before_calling_stripe(
    cli, recorded, recorded_env, subscribed
):
    result = cli(
        "subscriptions",
        "change",
        "u1",
        "--plan",
        "pro_plus",
        "--proration",
        "some",
        env=recorded_env,
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: proration 'some' is not one of create_prorations, always_invoice, none\n"
    )
    assert recorded.requests() == []


def test_cancel_now_goes_through_delete_with_a_key(cli, recorded, recorded_env, subscribed):
    sub, _ = subscribed
    result = _json(cli("subscriptions", "cancel", "u1", "--now", "--json", env=recorded_env))
    assert (result["status"], result["user_plan"]) == ("canceled", "free")
    (delete,) = recorded.requests("DELETE")
    assert delete.path == f"/v1/subscriptions/{sub['id']}"
    assert delete.idempotency_key.startswith("creditctl-subscription.cancel-")
