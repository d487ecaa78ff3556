"""A subscription that ends puts the user back on the free plan, in its running local period."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import new_user
from test_webhooks_ordering import Story
from webhook_helpers import now_utc

from creditctl.ledger.audit import verify as audit_verify
from creditctl.ledger.balances import balance
from creditctl.support.account_view import account_view


def _free_grants(engine) -> list[int]:
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.text(
                    "SELECT amount FROM grants WHERE user_id = 'alice' AND source = 'plan' "
                    "AND period_key LIKE 'free:%' ORDER BY id"
                )
            )
            .scalars()
            .all()
        )


def _subscribe_and_cancel(engine, config) -> None:
    story = Story(engine, config, "basil")
    story.send("customer.subscription.created", story.subscription())
    story.send("invoice.paid", story.invoice(), 1)
    assert balance(engine, "alice").plan == "pro"
    story.send("customer.subscription.deleted", story.subscription(status="canceled"), 2)
    assert balance(engine, "alice").plan == "free"


@pytest.mark.parametrize("rollover", [False, True])
def test_a_free_period_still_running_is_resumed_not_granted_again(
    engine, policy, synced, config, rollover
):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE plans SET rollover = :r WHERE name = 'free'"), {"r": rollover})
    joined = now_utc() - timedelta(days=3)
    new_user(engine, policy, "alice", now=joined)
    _subscribe_and_cancel(engine, config)
    assert _free_grants(engine) == [100]
    assert balance(engine, "alice").available == 5 + 100 + 1000
    view = account_view(engine, "alice", policy=policy)
    assert view["subscription"]["period_start"] == joined.isoformat().replace("+00:00", "Z")
    assert audit_verify(engine)["ok"]


@pytest.mark.parametrize("rollover", [False, True])
def test_a_free_period_that_is_over_starts_a_new_one(engine, policy, synced, config, rollover):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE plans SET rollover = :r WHERE name = 'free'"), {"r": rollover})
    new_user(engine, policy, "alice", now=now_utc() - timedelta(days=40))
    _subscribe_and_cancel(engine, config)
    assert _free_grants(engine) == [100, 100]
    assert audit_verify(engine)["ok"]
