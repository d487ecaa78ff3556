"""An invoice that arrives before its subscription, for a price known only by id."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from test_webhooks_ordering import Story
from test_webhooks_receive import plan_grants
from webhook_helpers import GENERATIONS, event, price, signed

from creditctl.ledger.audit import verify as audit_verify
from creditctl.ledger.balances import balance
from creditctl.webhooks.events import list_events
from creditctl.webhooks.processing import replay
from creditctl.webhooks.receive import receive

pytestmark = pytest.mark.parametrize("gen", GENERATIONS)


def test_the_invoice_waits_for_the_subscription_to_name_its_plan(engine, alice, config, gen):
    # A dashboard price: not synced here, no metadata on the invoice line; only the
    # subscription's item carries its lookup key.
    story = Story(
        engine, config, gen, price_obj=price("price_dashboard_only", lookup_key="creditctl_pro")
    )
    invoice = story.invoice()
    first = story.send("invoice.paid", invoice, 2)
    if gen == "legacy":  # the old line carries the whole price, lookup key included
        assert first.status == "processed" and plan_grants(engine) == [1000]
        return
    assert first.status == "deferred"
    [waiting] = list_events(engine, status="deferred")
    assert waiting["waiting_for"] == story.sub_id
    assert waiting["ignored_reason"] == (
        f"price price_dashboard_only of invoice {invoice['id']} maps to no plan "
        f"until subscription {story.sub_id} is recorded"
    )
    assert plan_grants(engine) == []
    story.send("customer.subscription.created", story.subscription(), 0)
    assert plan_grants(engine) == [1000]
    (revisited,) = [e for e in list_events(engine) if e["type"] == "invoice.paid"]
    assert revisited["status"] == "processed"
    assert balance(engine, "alice").plan == "pro"
    assert audit_verify(engine)["ok"]


def test_state_recorded_from_an_invoice_yields_to_any_subscription_event(
    engine, alice, synced, config, gen
):
    story = Story(engine, config, gen)
    story.send("invoice.paid", story.invoice(), 10)
    earlier = story.send(
        "customer.subscription.updated", story.subscription(cancel_at_period_end=True), 0
    )
    assert "older than the recorded state" not in earlier.detail
    assert story.recorded()["cancel_at_period_end"] is True
    assert plan_grants(engine) == [1000]


def test_an_event_left_pending_by_a_dead_process_is_retried(engine, alice, synced, config, gen):
    story = Story(engine, config, gen)
    evt = event("invoice.paid", story.invoice(), created=story.t0, gen=gen)
    receive(engine, *signed(evt), config)
    with engine.begin() as conn:  # as if the process died after storing, before handling
        conn.execute(sa.text("UPDATE webhook_events SET status = 'pending', attempts = 0"))
    stuck_since = story.t0 + timedelta(minutes=5)
    (retried,) = replay(engine, config, failed=True, now=stuck_since)
    assert retried.ran and retried.status == "processed"
    assert replay(engine, config, failed=True, now=stuck_since) == []
