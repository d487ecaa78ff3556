"""A subscription canceled right after paying: its paid period's credits whatever the order.

Stripe may deliver `customer.subscription.deleted` before the `invoice.paid` of the period
the user just paid for. Either way the user keeps that period's plan credits, granted
once, until the period ends; a paid period that is already over grants nothing either way.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import new_user
from test_webhooks_ordering import Story
from test_webhooks_receive import plan_grants
from webhook_helpers import GENERATIONS, price

from creditctl.db.tables import grants, subscriptions
from creditctl.ledger.audit import verify as audit_verify
from creditctl.ledger.balances import balance

pytestmark = pytest.mark.parametrize("gen", GENERATIONS)
PAID_THEN_DELETED = ("invoice.paid", "customer.subscription.deleted")
DELETED_THEN_PAID = ("customer.subscription.deleted", "invoice.paid")


def _two_users(engine, policy) -> None:
    new_user(engine, policy, "alice")
    new_user(engine, policy, "bob")


def _cancel_after_paying(story: Story, order: tuple[str, str]) -> dict[str, str]:
    """created, then paid and deleted delivered in `order`; what each delivery answered."""
    story.send("customer.subscription.created", story.subscription(), 0)
    objects = {
        "invoice.paid": (story.invoice(), 5),
        "customer.subscription.deleted": (story.subscription(status="canceled"), 10),
    }
    answered = {}
    for event_type in order:
        obj, offset = objects[event_type]
        outcome = story.send(event_type, obj, offset)
        answered[event_type] = outcome.detail
        assert outcome.status == "processed", outcome.detail
    return answered


def _plan_grants_with_expiry(engine, user_id: str) -> list[tuple[int, object]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(grants.c.amount, grants.c.expires_at)
            .where(grants.c.user_id == user_id, grants.c.source == "plan")
            .where(grants.c.period_key.like("sub_%"))
        ).all()
    return [(row.amount, row.expires_at) for row in rows]


def _status(engine, sub_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(subscriptions.c.status).where(
                subscriptions.c.stripe_subscription_id == sub_id
            )
        ).scalar_one()


@pytest.mark.parametrize("price_mode", ["synced", "dashboard"])
def test_canceled_right_after_paying_keeps_the_period_credits_in_either_order(
    engine, policy, synced, config, gen, price_mode
):
    _two_users(engine, policy)
    dashboard = price("price_dashboard_only", lookup_key="creditctl_pro")
    shape = {"price_obj": dashboard} if price_mode == "dashboard" else {}
    in_order = Story(engine, config, gen, user_id="alice", **shape)
    reversed_ = Story(engine, config, gen, user_id="bob", **shape)
    _cancel_after_paying(in_order, PAID_THEN_DELETED)
    _cancel_after_paying(reversed_, DELETED_THEN_PAID)
    for story in (in_order, reversed_):
        assert _plan_grants_with_expiry(engine, story.user_id) == [(1000, story.end)]
        assert _status(engine, story.sub_id) == "canceled"
        state = balance(engine, story.user_id)
        assert state.plan == "free"  # back to the default plan, with the paid credits
        assert state.available == 5 + 100 + 1000
    assert audit_verify(engine)["ok"]


def test_the_paid_period_is_granted_once_after_the_cancellation(engine, alice, synced, config, gen):
    story = Story(engine, config, gen)
    _cancel_after_paying(story, DELETED_THEN_PAID)
    again = story.send("invoice.payment_succeeded", story.invoice(), 6)
    assert again.status == "processed"
    assert plan_grants(engine) == [1000]
    assert audit_verify(engine)["ok"]


def test_a_paid_period_already_over_grants_nothing_in_either_order(
    engine, policy, synced, config, gen
):
    _two_users(engine, policy)
    details = []
    for user_id, order in (("alice", PAID_THEN_DELETED), ("bob", DELETED_THEN_PAID)):
        story = Story(engine, config, gen, user_id=user_id)
        story.start, story.end = story.t0 - timedelta(days=40), story.t0 - timedelta(days=10)
        details.append(_cancel_after_paying(story, order)["invoice.paid"])
        assert plan_grants(engine, user_id) == []
    # The same answer whichever came first: the period is over, not the subscription.
    for detail in details:
        assert "is for a period that has ended" in detail and "nothing granted" in detail
