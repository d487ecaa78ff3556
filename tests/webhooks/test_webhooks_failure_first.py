"""A payment failure delivered before its subscription's events leaves no paid period ungranted.

The invoice names its price by id only (a price made in the Dashboard, not synced), so only
the subscription's events name its plan. What the failure recorded is provisional: the
subscription's events, even older ones, fill in the plan, and a paid invoice that finds no
plan yet waits for them instead of being ignored.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import new_user
from test_webhooks_ordering import Story
from test_webhooks_receive import plan_grants
from webhook_helpers import GENERATIONS, price

from creditctl.db.tables import subscriptions, users
from creditctl.ledger.audit import verify as audit_verify
from creditctl.webhooks.events import list_events
from creditctl.webhooks.processing import replay

pytestmark = pytest.mark.parametrize("gen", GENERATIONS)
DASHBOARD = "price_dashboard_only"


def _story(engine, config, gen, user_id: str) -> Story:
    return Story(
        engine, config, gen, user_id=user_id, price_obj=price(DASHBOARD, lookup_key="creditctl_pro")
    )


def _lapsed(story: Story) -> dict[str, tuple[str, object, int]]:
    """Subscribed, paid, activated, then the next payment failed: (type, object, created)."""
    return {
        "created": ("customer.subscription.created", story.subscription(status="incomplete"), 0),
        "paid": ("invoice.paid", story.invoice(), 5),
        "active": ("customer.subscription.updated", story.subscription(), 10),
        "failed": ("invoice.payment_failed", story.invoice(status="open"), 15),
        "past_due": ("customer.subscription.updated", story.subscription(status="past_due"), 20),
        "deleted": ("customer.subscription.deleted", story.subscription(status="canceled"), 12),
    }


def _deliver(story: Story, order: list[str]) -> dict[str, str]:
    events = _lapsed(story)
    statuses = {}
    for name in order:
        event_type, obj, offset = events[name]
        statuses[name] = story.send(event_type, obj, offset).status
    return statuses


def _state(engine, story: Story) -> tuple:
    """What a user sees of the subscription: status, overdue, plan, plan grants."""
    with engine.connect() as conn:
        status = conn.execute(
            sa.select(subscriptions.c.status, subscriptions.c.plan).where(
                subscriptions.c.stripe_subscription_id == story.sub_id
            )
        ).one()
        user = conn.execute(
            sa.select(users.c.plan, users.c.past_due_since).where(users.c.id == story.user_id)
        ).one()
    return (
        tuple(status),
        user.plan,
        user.past_due_since is not None,
        plan_grants(engine, story.user_id),
    )


def test_a_failure_first_then_its_subscription_grants_the_paid_period_once(
    engine, policy, config, gen
):
    new_user(engine, policy, "alice")
    new_user(engine, policy, "bob")
    failure_first = _story(engine, config, gen, "alice")
    in_order = _story(engine, config, gen, "bob")
    _deliver(failure_first, ["failed", "created", "paid", "active", "past_due"])
    _deliver(in_order, ["created", "paid", "active", "failed", "past_due"])
    expected = (("past_due", "pro"), "pro", True, [1000])
    assert _state(engine, in_order) == expected
    assert _state(engine, failure_first) == expected
    assert {e["status"] for e in list_events(engine)} == {"processed"}
    assert audit_verify(engine)["ok"]


def test_a_newer_failure_outlasts_older_subscription_events(engine, policy, config, gen):
    # No customer.subscription.updated(past_due) this time: the failure is the newest news.
    new_user(engine, policy, "alice")
    new_user(engine, policy, "bob")
    failure_first = _story(engine, config, gen, "alice")
    in_order = _story(engine, config, gen, "bob")
    _deliver(failure_first, ["failed", "active", "paid", "created"])
    _deliver(in_order, ["created", "paid", "active", "failed"])
    expected = (("past_due", "pro"), "pro", True, [1000])
    assert _state(engine, in_order) == expected
    assert _state(engine, failure_first) == expected


def test_a_paid_invoice_waits_while_the_recorded_subscription_has_no_plan(
    engine, alice, config, gen
):
    story = _story(engine, config, gen, "alice")
    answered = _deliver(story, ["failed", "paid"])
    if gen == "legacy":  # the old line carries the whole price, lookup key included
        assert answered["paid"] == "processed" and plan_grants(engine) == [1000]
        return
    assert answered["paid"] == "deferred"
    [waiting] = list_events(engine, status="deferred")
    assert waiting["waiting_for"] == story.sub_id
    assert plan_grants(engine) == []
    # Its wait is not over: the retry paths leave it alone until the plan is known.
    assert replay(engine, config, failed=True, now=story.t0 + timedelta(minutes=5)) == []
    _deliver(story, ["created"])  # older than both invoices, and it names the plan
    assert plan_grants(engine) == [1000]
    assert list_events(engine, status="deferred") == []
    assert _state(engine, story)[0] == ("past_due", "pro")


def test_an_end_older_than_the_failure_leaves_nothing_overdue(engine, policy, config, gen):
    new_user(engine, policy, "alice")
    new_user(engine, policy, "bob")
    failure_first = _story(engine, config, gen, "alice")
    in_order = _story(engine, config, gen, "bob")
    _deliver(failure_first, ["failed", "deleted"])
    _deliver(in_order, ["deleted", "failed"])
    expected = (("canceled", "pro"), "free", False, [])
    assert _state(engine, in_order) == expected
    assert _state(engine, failure_first) == expected
