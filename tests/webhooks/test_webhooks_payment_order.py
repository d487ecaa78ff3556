"""Payment state follows the order of Stripe's payment news, as subscription state does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_webhooks_ordering import Story
from webhook_helpers import GENERATIONS, event, signed

from creditctl.errors import PaymentOverdue
from creditctl.ledger.policy import Policy
from creditctl.ledger.spending import deduct
from creditctl.support.account_view import account_view
from creditctl.webhooks.processing import replay
from creditctl.webhooks.receive import receive

pytestmark = pytest.mark.parametrize("gen", GENERATIONS)
NO_GRACE = Policy(past_due_grace_days=0)


def _payment_warnings(engine) -> list[str]:
    view = account_view(engine, "alice", policy=NO_GRACE)
    return [w for w in view["warnings"] if w.startswith("payment failed")]


def _send(story: Story, event_type: str, obj, offset: int) -> dict:
    evt = event(event_type, obj, created=story.t0 + timedelta(seconds=offset), gen=story.gen)
    receive(story.engine, *signed(evt), story.config)
    return evt


@pytest.fixture
def failed_after_paid(engine, alice, synced, config, gen):
    """Subscribed and paid, then the next payment failed (all in the past)."""
    story = Story(engine, config, gen)
    _send(story, "customer.subscription.created", story.subscription(), -300)
    first_paid = _send(story, "invoice.paid", story.invoice(), -200)
    _send(story, "invoice.payment_failed", story.invoice(status="open"), -100)
    assert _payment_warnings(engine)
    return story, first_paid


def test_a_late_older_paid_invoice_keeps_the_newer_failure(engine, failed_after_paid):
    story, _ = failed_after_paid
    _send(story, "invoice.payment_succeeded", story.invoice(), -150)  # delivered late
    assert _payment_warnings(engine)
    with pytest.raises(PaymentOverdue):
        deduct(engine, "alice", 1, actor="render", policy=NO_GRACE)


def test_a_forced_replay_of_the_older_paid_invoice_keeps_the_failure(engine, failed_after_paid):
    story, first_paid = failed_after_paid
    (outcome,) = replay(engine, story.config, event_id=first_paid["id"], force=True)
    assert outcome.ran and outcome.status == "processed"
    assert _payment_warnings(engine)


def test_a_newer_paid_invoice_clears_the_failure(engine, failed_after_paid):
    story, _ = failed_after_paid
    _send(story, "invoice.paid", story.invoice(), -50)
    assert _payment_warnings(engine) == []
    assert deduct(engine, "alice", 1, actor="render", policy=NO_GRACE).amount == -1


def test_a_late_older_failure_does_not_undo_a_newer_payment(engine, alice, synced, config, gen):
    story = Story(engine, config, gen)
    _send(story, "customer.subscription.created", story.subscription(), -300)
    _send(story, "invoice.paid", story.invoice(), -100)
    _send(story, "invoice.payment_failed", story.invoice(status="open"), -200)  # late
    assert _payment_warnings(engine) == []
    assert story.recorded()["status"] == "active"
    assert deduct(engine, "alice", 1, actor="render", policy=NO_GRACE).amount == -1
