"""Handlers, mapping rules and out-of-order delivery, in both payload generations and backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from test_webhooks_receive import plan_grants
from webhook_helpers import (
    GENERATIONS,
    SECRET,
    event,
    invoice,
    legacy_plan,
    next_id,
    now_utc,
    period,
    price,
    signed,
    subscription,
)
from webhook_support import PRO_PRICE, gateway

from creditctl.billing.subscription_views import local_subscriptions
from creditctl.ledger.audit import verify as audit_verify
from creditctl.ledger.balances import balance
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.receive import receive

pytestmark = pytest.mark.parametrize("gen", GENERATIONS)


class Story:
    """One subscription's events for one user, in the chosen payload generation."""

    def __init__(
        self, engine, config, gen: str, user_id: str | None = "alice", price_obj=None
    ) -> None:
        self.engine, self.config, self.gen, self.user_id = engine, config, gen, user_id
        self.sub_id, self.customer = next_id("sub"), next_id("cus")
        self.t0 = now_utc()
        self.start, self.end = period(self.t0 - timedelta(days=1))
        self.price = price_obj or price(PRO_PRICE)

    def subscription(self, created_offset: int = 0, **fields):
        obj = subscription(
            self.gen,
            sub_id=self.sub_id,
            customer=self.customer,
            price_obj=fields.pop("price_obj", self.price),
            start=fields.pop("start", self.start),
            end=fields.pop("end", self.end),
            user_id=self.user_id,
            **fields,
        )
        return obj

    def send(self, event_type: str, obj, created_offset: int = 0):
        evt = event(
            event_type, obj, created=self.t0 + timedelta(seconds=created_offset), gen=self.gen
        )
        return receive(self.engine, *signed(evt), self.config).outcome

    def invoice(self, **fields):
        return invoice(
            self.gen,
            sub_id=self.sub_id,
            customer=self.customer,
            price_id=fields.pop("price_id", self.price["id"]),
            start=fields.pop("start", self.start),
            end=fields.pop("end", self.end),
            user_id=self.user_id,
            price_obj=self.price,
            **fields,
        )

    def recorded(self):
        with self.engine.connect() as conn:
            return next(
                s for s in local_subscriptions(conn, "alice") if s["subscription_id"] == self.sub_id
            )


def test_in_order_lifecycle(engine, alice, synced, config, gen):
    story = Story(engine, config, gen)
    assert story.send("customer.subscription.created", story.subscription()).status == "processed"
    assert story.send("invoice.paid", story.invoice(), 1).status == "processed"
    assert story.send("invoice.payment_succeeded", story.invoice(), 1).status == "processed"
    assert plan_grants(engine) == [1000]
    state = balance(engine, "alice")
    assert (state.plan, state.available) == ("pro", 5 + 100 + 1000)
    assert story.recorded()["current_period_end"] == story.end.isoformat().replace("+00:00", "Z")
    assert audit_verify(engine)["ok"]


def test_updated_before_created_keeps_the_newer_state(engine, alice, synced, config, gen):
    story = Story(engine, config, gen)
    story.send("customer.subscription.updated", story.subscription(cancel_at_period_end=True), 10)
    late = story.send("customer.subscription.created", story.subscription(), 0)
    assert late.status == "processed" and "older than the recorded state" in late.detail
    assert story.recorded()["cancel_at_period_end"] is True
    assert balance(engine, "alice").plan == "pro"


def test_invoice_paid_before_the_subscription_exists(engine, alice, synced, config, gen):
    story = Story(engine, config, gen)
    assert story.send("invoice.paid", story.invoice(), 2).status == "processed"
    assert plan_grants(engine) == [1000]
    assert balance(engine, "alice").plan == "pro"
    story.send("customer.subscription.created", story.subscription(status="incomplete"), 0)
    story.send("customer.subscription.updated", story.subscription(), 2)
    story.send("invoice.payment_succeeded", story.invoice(), 2)
    assert plan_grants(engine) == [1000]
    assert story.recorded()["status"] == "active"
    assert balance(engine, "alice").plan == "pro"
    assert audit_verify(engine)["ok"]


def test_deleted_then_a_late_updated(engine, alice, synced, config, gen):
    story = Story(engine, config, gen)
    story.send("customer.subscription.created", story.subscription())
    story.send("invoice.paid", story.invoice(), 1)
    story.send("customer.subscription.deleted", story.subscription(status="canceled"), 20)
    late = story.send(
        "customer.subscription.updated", story.subscription(cancel_at_period_end=True), 10
    )
    assert "older than the recorded state" in late.detail
    assert story.recorded()["status"] == "canceled"
    state = balance(engine, "alice")
    assert state.plan == "free"
    assert plan_grants(engine) == [1000]  # paid credits stay until their period ends
    assert state.available >= 1000
    assert audit_verify(engine)["ok"]


def test_a_renewal_grants_the_new_period_and_expires_the_old(engine, alice, synced, config, gen):
    story = Story(engine, config, gen)
    old_start, old_end = story.start - timedelta(days=29), story.start
    story.send("invoice.paid", story.invoice(start=old_start, end=story.end), 0)
    # the previous period is still running: its invoice granted; the cycle invoice follows.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE grants SET expires_at = :e WHERE user_id = 'alice' "
                "AND period_key LIKE 'sub_%'"
            ),
            {"e": old_end + timedelta(days=1)},
        )
    story.send("invoice.paid", story.invoice(billing_reason="subscription_cycle"), 5)
    story.send("invoice.paid", story.invoice(billing_reason="subscription_cycle"), 5)
    assert plan_grants(engine) == [1000, 1000]
    with engine.connect() as conn:
        remaining = (
            conn.execute(
                sa.text(
                    "SELECT remaining FROM grants WHERE user_id = 'alice' "
                    "AND period_key LIKE 'sub_%' ORDER BY id"
                )
            )
            .scalars()
            .all()
        )
    assert remaining == [0, 1000]
    assert balance(engine, "alice").available == 5 + 100 + 1000
    assert audit_verify(engine)["ok"]


def test_an_invoice_for_a_period_already_over_grants_nothing(engine, alice, synced, config, gen):
    story = Story(engine, config, gen)
    long_ago = story.start - timedelta(days=90)
    outcome = story.send(
        "invoice.paid", story.invoice(start=long_ago, end=long_ago + timedelta(days=30))
    )
    assert outcome.status == "processed" and "nothing granted" in outcome.detail
    assert plan_grants(engine) == []


@pytest.mark.parametrize(
    "mapping", ["lookup key", "price metadata", "legacy plan metadata", "product metadata"]
)
def test_prices_made_in_the_dashboard_map_to_plans(engine, alice, config, gen, mapping):
    if mapping == "lookup key":
        dashboard = price("price_dash", lookup_key="creditctl_pro_plus")
    elif mapping == "price metadata":
        dashboard = price("price_dash", plan="pro_plus")
    elif mapping == "legacy plan metadata":
        dashboard = legacy_plan("plan_dash", plan="pro_plus")
    else:
        dashboard = price("price_dash", product={"id": "prod_x", "metadata": {"plan": "pro_plus"}})
    story = Story(engine, config, gen, price_obj=dashboard)
    outcome = story.send("customer.subscription.created", story.subscription())
    assert outcome.status == "processed", outcome.detail
    assert balance(engine, "alice").plan == "pro_plus"
    assert story.recorded()["plan"] == "pro_plus"


def test_an_invoice_price_id_is_looked_up_in_stripe(engine, alice, gen, stub_stripe):
    stub_stripe.objects["price_dash"] = price("price_dash", product="prod_dash")
    stub_stripe.objects["prod_dash"] = {
        "id": "prod_dash",
        "object": "product",
        "metadata": {"plan": "pro_plus"},
    }
    config = WebhookConfig(secrets=(SECRET,), gateway=gateway(stub_stripe.url))
    story = Story(engine, config, gen, price_obj=price("price_dash", product="prod_dash"))
    assert story.send("invoice.paid", story.invoice()).status == "processed"
    assert plan_grants(engine) == [5000]


def test_the_customer_link_and_customer_metadata_map_users(engine, alice, synced, gen, stub_stripe):
    config = WebhookConfig(secrets=(SECRET,), gateway=gateway(stub_stripe.url))
    story = Story(engine, config, gen, user_id=None)
    stub_stripe.objects[story.customer] = {
        "id": story.customer,
        "object": "customer",
        "metadata": {"creditctl_user_id": "alice"},
    }
    assert story.send("customer.subscription.created", story.subscription()).status == "processed"
    with engine.connect() as conn:
        linked = conn.execute(sa.text("SELECT stripe_customer_id FROM users WHERE id = 'alice'"))
        assert linked.scalar_one() == story.customer
    stub_stripe.objects.clear()
    assert story.send("invoice.paid", story.invoice(), 1).status == "processed"
    assert plan_grants(engine) == [1000]


def test_fetch_latest_uses_stripe_s_current_object(engine, alice, synced, gen, stub_stripe):
    config = WebhookConfig(secrets=(SECRET,), fetch_latest=True, gateway=gateway(stub_stripe.url))
    story = Story(engine, config, gen)
    stub_stripe.objects[story.sub_id] = story.subscription(cancel_at_period_end=True)
    story.send("customer.subscription.updated", story.subscription())
    assert story.recorded()["cancel_at_period_end"] is True
    assert any(story.sub_id in path for path in stub_stripe.requests)


def test_payment_failed_marks_past_due_for_the_account_view(
    engine, policy, alice, synced, config, gen
):
    from creditctl.support.account_view import account_view

    story = Story(engine, config, gen)
    story.send("customer.subscription.created", story.subscription())
    outcome = story.send("invoice.payment_failed", story.invoice(status="open"), 5)
    assert outcome.status == "processed"
    assert story.recorded()["status"] == "past_due"
    view = account_view(engine, "alice", policy=policy)
    assert view["subscription"]["status"].startswith("past_due")


def test_checkout_links_and_customer_deleted_unlinks(engine, alice, config, gen):
    session = {
        "id": "cs_1",
        "object": "checkout.session",
        "client_reference_id": "alice",
        "customer": "cus_checkout",
        "subscription": "sub_checkout",
        "metadata": {},
    }
    story = Story(engine, config, gen)
    assert story.send("checkout.session.completed", session).status == "processed"
    with engine.connect() as conn:
        link = sa.text("SELECT stripe_customer_id FROM users WHERE id = 'alice'")
        assert conn.execute(link).scalar_one() == "cus_checkout"
    deleted = story.send("customer.deleted", {"id": "cus_checkout", "object": "customer"}, 5)
    assert deleted.status == "processed"
    with engine.connect() as conn:
        assert conn.execute(link).scalar_one() is None
    again = story.send("customer.deleted", {"id": "cus_checkout", "object": "customer"}, 6)
    assert again.status == "ignored"
