"""Checkout and portal links, customers and retries against the recorded-response server."""

from __future__ import annotations

import json

import sqlalchemy as sa

from creditctl.db.tables import stripe_requests


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _synced_user(cli, env, user_id="u1", email="alice@example.com"):
    _ok(cli("users", "add", email, "--id", user_id, "--name", "Alice"))
    _ok(cli("plans", "sync", env=env))


def test_checkout_link_sends_the_subscription_parameters(cli, recorded, recorded_env):
    _synced_user(cli, recorded_env)
    recorded.clear_requests()
    result = _ok(cli("stripe", "checkout", "alice@example.com", "--plan", "pro", env=recorded_env))
    (session,) = recorded.objects("checkout.session")
    assert result.stdout.strip() == session["url"]

    (customer_post,) = recorded.requests("POST", "/v1/customers")
    assert customer_post.params == {
        "email": "alice@example.com",
        "name": "Alice",
        "metadata[creditctl_user_id]": "u1",
    }
    (customer,) = recorded.objects("customer")
    (post,) = recorded.requests("POST", "/v1/checkout/sessions")
    price = next(p for p in recorded.objects("price") if p["lookup_key"] == "creditctl_pro")
    assert post.params == {
        "mode": "subscription",
        "customer": customer["id"],
        "client_reference_id": "u1",
        "line_items[0][price]": price["id"],
        "line_items[0][quantity]": "1",
        "subscription_data[metadata][creditctl_user_id]": "u1",
        "subscription_data[metadata][plan]": "pro",
        "metadata[creditctl_user_id]": "u1",
        "metadata[plan]": "pro",
        "success_url": "https://example.com/billing/success",
        "cancel_url": "https://example.com/billing/cancel",
    }
    assert post.idempotency_key.startswith("creditctl-checkout.create-")
    assert post.headers["stripe-version"] == "2026-10-28.endive"
    found = json.loads(_ok(cli("users", "search", customer["id"], "--json")).stdout)
    assert [u["id"] for u in found] == ["u1"]


def test_checkout_urls_come_from_flags(cli, recorded, recorded_env):
    _synced_user(cli, recorded_env)
    result = _ok(
        cli(
            "stripe",
            "checkout",
            "u1",
            "--plan",
            "pro_plus",
            "--json",
            "--success-url",
            "https://shop.example/ok",
            "--cancel-url",
            "https://shop.example/no",
            env=recorded_env,
        )
    )
    body = json.loads(result.stdout)
    assert body["url"].startswith("https://checkout.stripe.com/")
    (post,) = recorded.requests("POST", "/v1/checkout/sessions")
    assert post.params["success_url"] == "https://shop.example/ok"
    assert post.params["cancel_url"] == "https://shop.example/no"


def test_checkout_refuses_free_and_unsynced_plans(cli, recorded, recorded_env):
    _ok(cli("users", "add", "a@example.com", "--id", "u1"))
    free = cli("stripe", "checkout", "u1", "--plan", "free", env=recorded_env)
    assert free.exit_code == 2
    assert "plan 'free' is free and renewed locally" in free.stderr
    unsynced = cli("stripe", "checkout", "u1", "--plan", "pro", env=recorded_env)
    assert unsynced.exit_code == 2
    assert unsynced.stderr == (
        "error: plan 'pro' has no Stripe price yet; run `creditctl plans sync`\n"
    )
    assert recorded.requests() == []


def test_portal_link_reuses_the_customer(cli, recorded, recorded_env):
    _ok(cli("users", "add", "a@example.com", "--id", "u1"))
    first = _ok(cli("stripe", "portal", "u1", env=recorded_env))
    second = _ok(
        cli("stripe", "portal", "u1", "--return-url", "https://shop.example/me", env=recorded_env)
    )
    sessions = recorded.objects("billing_portal.session")
    assert [first.stdout.strip(), second.stdout.strip()] == [s["url"] for s in sessions]
    assert len(recorded.objects("customer")) == 1
    posts = recorded.requests("POST", "/v1/billing_portal/sessions")
    customer = recorded.objects("customer")[0]["id"]
    assert [p.params for p in posts] == [
        {"customer": customer, "return_url": "https://example.com/billing"},
        {"customer": customer, "return_url": "https://shop.example/me"},
    ]
    assert posts[0].idempotency_key != posts[1].idempotency_key


def test_a_500_is_retried_with_the_same_key_into_one_session(cli, recorded, recorded_env):
    _synced_user(cli, recorded_env)
    recorded.fail_next("500", path="/v1/checkout/sessions")
    _ok(cli("stripe", "checkout", "u1", "--plan", "pro", env=recorded_env))
    attempts = recorded.requests("POST", "/v1/checkout/sessions")
    assert len(attempts) == 2
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    assert len(recorded.objects("checkout.session")) == 1


def test_a_dropped_answer_is_retried_into_one_customer(cli, recorded, recorded_env):
    _ok(cli("users", "add", "a@example.com", "--id", "u1"))
    recorded.fail_next("drop", path="/v1/customers")
    result = _ok(cli("stripe", "customer", "u1", "--json", env=recorded_env))
    attempts = recorded.requests("POST", "/v1/customers")
    assert len(attempts) == 2
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    (customer,) = recorded.objects("customer")
    assert json.loads(result.stdout) == {
        "user_id": "u1",
        "customer_id": customer["id"],
        "action": "created",
    }


def _pending(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(stripe_requests)).all()


def test_a_crash_before_the_answer_reuses_the_stored_key(cli, recorded, recorded_env, engine):
    _synced_user(cli, recorded_env)
    _ok(cli("stripe", "customer", "u1", env=recorded_env))
    recorded.fail_next("drop", path="/v1/checkout/sessions", times=3)  # every answer lost
    failed = cli("stripe", "checkout", "u1", "--plan", "pro", env=recorded_env)
    assert failed.exit_code == 6
    assert failed.stderr.startswith("error: could not reach Stripe")
    (pending,) = _pending(engine)
    assert pending.operation.startswith("checkout.create:u1:")

    again = _ok(cli("stripe", "checkout", "u1", "--plan", "pro", env=recorded_env))
    attempts = recorded.requests("POST", "/v1/checkout/sessions")
    assert len(attempts) == 4
    assert {r.idempotency_key for r in attempts} == {pending.idempotency_key}
    (session,) = recorded.objects("checkout.session")
    assert again.stdout.strip() == session["url"]
    assert _pending(engine) == []
    third = _ok(cli("stripe", "checkout", "u1", "--plan", "pro", env=recorded_env))
    assert third.stdout != again.stdout  # a new request after the answer gets a new key
    assert len(recorded.objects("checkout.session")) == 2


def test_a_customer_made_before_a_crash_is_found_not_made_again(
    cli, recorded, recorded_env, engine
):
    _ok(cli("users", "add", "a@example.com", "--id", "u1"))
    recorded.fail_next("drop", path="/v1/customers", times=3)
    assert cli("stripe", "customer", "u1", env=recorded_env).exit_code == 6
    assert len(_pending(engine)) == 1
    again = json.loads(_ok(cli("stripe", "customer", "u1", "--json", env=recorded_env)).stdout)
    (customer,) = recorded.objects("customer")
    assert again == {"user_id": "u1", "customer_id": customer["id"], "action": "reused"}
    assert len(recorded.requests("POST", "/v1/customers")) == 3
    assert _pending(engine) == []


def test_a_stripe_refusal_is_one_line_with_the_request_id(cli, recorded, recorded_env, engine):
    _ok(cli("users", "add", "a@example.com", "--id", "u1"))
    recorded.fail_next("402", path="/v1/customers")
    result = cli("stripe", "customer", "u1", env=recorded_env)
    assert result.exit_code == 6
    assert result.stderr.startswith(
        "error: Stripe answered 402: injected 402 (request req_recorded"
    )
    assert result.stderr.count("\n") == 1
    assert _pending(engine) == []  # a definite refusal: the next try gets a new key
