"""The fault suite's invariants can fail: in-order deliveries pass, each kind of damage is named.

The rounds only mean something if the check after them notices a broken promise; here the
same stories are delivered once each, in order, in-process, and the check must find
nothing; then the database is damaged the ways the rounds look for, and it must say so.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fault_invariants import violations
from fault_stories import round_stories
from helpers import new_user
from webhook_helpers import SECRET, signed
from webhook_support import PRO_PRICE

from creditctl.clock import utcnow
from creditctl.db.engine import write
from creditctl.ledger.postings import add_grant
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.receive import receive

pytestmark = pytest.mark.fault


class EveryAnswer:
    """What the rounds' delivery book offers the check: here every event was answered."""

    def acked(self, event_id: str) -> bool:
        return True

    def answered(self, story) -> str:
        return "in order, once each"


@pytest.fixture
def delivered(engine, database_url, policy):
    """A round's stories, each event delivered once in `created` order."""
    stories = round_stories(random.Random(7), "chk", 6, datetime.now(UTC).replace(microsecond=0))
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE plans SET stripe_price_id = :p WHERE name = 'pro'"), {"p": PRO_PRICE}
        )
    config = WebhookConfig(secrets=(SECRET,))
    for story in stories:
        new_user(engine, policy, story.user_id)
        for evt in story.events:
            outcome = receive(engine, *signed(evt), config).outcome
            assert not outcome.failed, outcome
    return stories


def test_in_order_deliveries_keep_every_promise(database_url, delivered):
    assert violations(database_url, delivered, EveryAnswer()) == ([], [])


def test_a_second_grant_for_a_paid_period_is_named(engine, database_url, delivered):
    story = next(s for s in delivered if s.paid)
    with write(engine) as conn:
        add_grant(
            conn,
            user_id=story.user_id,
            source="plan",
            amount=story.credits,
            actor="tester",
            now=utcnow(),
            expires_at=story.end,
            period_key=f"{story.sub_id}:{int(story.start.timestamp())}:ultimate",
            description="a doubled grant",
        )
    problems, evidence = violations(database_url, delivered, EveryAnswer())
    assert problems == [
        f"{story.sub_id} ({story.kind}): paid period granted 2 time(s), expected once "
        f"({story.credits} ending {story.end:%Y-%m-%d %H:%M}): "
        f"[({story.credits}, '{story.sub_id}:{int(story.start.timestamp())}:{story.plan}'), "
        f"({story.credits}, '{story.sub_id}:{int(story.start.timestamp())}:ultimate')]"
    ]
    assert evidence[0] == story.describe()


def test_a_grant_for_an_unpaid_period_is_named(engine, database_url, delivered):
    story = next(s for s in delivered if not s.paid)
    with write(engine) as conn:
        add_grant(
            conn,
            user_id=story.user_id,
            source="plan",
            amount=story.credits,
            actor="tester",
            now=utcnow(),
            expires_at=story.end,
            period_key=f"{story.sub_id}:{int(story.start.timestamp())}:{story.plan}",
            description="credits nobody paid for",
        )
    problems, _ = violations(database_url, delivered, EveryAnswer())
    assert [p.split(": ", 1)[1].split(":")[0] for p in problems] == ["unpaid period granted"]


def test_a_wrong_payment_state_and_an_unanswered_event_are_named(engine, database_url, delivered):
    paid_up = next(s for s in delivered if s.paid and not s.overdue)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE users SET past_due_since = :t WHERE id = :u"),
            {"t": utcnow(), "u": paid_up.user_id},
        )
        conn.execute(
            sa.text("UPDATE subscriptions SET status = 'unpaid' WHERE stripe_subscription_id = :s"),
            {"s": paid_up.sub_id},
        )

    class OneUnanswered(EveryAnswer):
        def acked(self, event_id: str) -> bool:
            return event_id != paid_up.events[-1]["id"]

    problems, _ = violations(database_url, delivered, OneUnanswered())
    prefix = f"{paid_up.sub_id} ({paid_up.kind}): "
    assert [p.removeprefix(prefix).split(" ")[0:2] for p in problems] == [
        ["never", "answered"],
        ["subscription", "status"],
        ["users.past_due_since", "is"],
    ]
