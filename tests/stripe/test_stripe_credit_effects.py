"""apply_subscription_change: credits once per (subscription, period, plan), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from creditctl.accounts.users import add_user
from creditctl.billing.subscriptions import apply_subscription_change
from creditctl.db.tables import grants, subscriptions, users
from creditctl.ledger.audit import verify
from creditctl.ledger.transactions import run_write

P1 = datetime(2026, 11, 1, tzinfo=UTC)
P2 = datetime(2026, 12, 1, tzinfo=UTC)
P3 = datetime(2027, 1, 1, tzinfo=UTC)
NOW = P1 + timedelta(days=3)


def _apply(
    engine,
    plan,
    *,
    start=P1,
    end=P2,
    status="active",
    created=NOW,
    paid=False,
    now=NOW,
    ended_plan=None,
    sub="sub_1",
):
    return run_write(
        engine,
        lambda conn: apply_subscription_change(
            conn,
            user_id="u1",
            subscription_id=sub,
            customer_id="cus_1",
            plan=plan,
            period_start=start,
            period_end=end,
            status=status,
            stripe_created=created,
            actor="evt_test",
            now=now,
            paid=paid,
            ended_plan=ended_plan,
        ),
    )


def _user(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(users).where(users.c.id == "u1")).one()


def _plan_grants(engine):
    with engine.connect() as conn:
        return conn.execute(
            sa.select(grants.c.period_key, grants.c.amount, grants.c.expires_at)
            .where(grants.c.user_id == "u1", grants.c.period_key.like("sub_%"))
            .order_by(grants.c.id)
        ).all()


def _setup(engine, policy):
    add_user(
        engine,
        "u1@example.com",
        user_id="u1",
        plan="free",
        actor="t",
        policy=policy,
        now=P1 - timedelta(days=20),
    )


def test_period_credits_come_with_the_paid_invoice_once(engine, policy):
    _setup(engine, policy)
    first = _apply(engine, "pro")
    assert (first.granted, first.user_plan) == (0, "pro")
    assert _plan_grants(engine) == []
    paid = _apply(engine, "pro", paid=True)
    assert paid.granted == 1000
    again = _apply(engine, "pro", paid=True)
    assert again.granted == 0
    assert [(g.amount, g.expires_at) for g in _plan_grants(engine)] == [(1000, P2)]
    assert (_user(engine).period_start, _user(engine).period_end) == (P1, P2)


def test_upgrade_mid_period_grants_the_difference_exactly_once(engine, policy):
    _setup(engine, policy)
    _apply(engine, "pro", paid=True)
    upgrade = _apply(engine, "pro_plus", created=NOW + timedelta(days=1))
    assert (upgrade.granted, upgrade.user_plan) == (4000, "pro_plus")
    # the webhook path sees the same change later: nothing more
    assert _apply(engine, "pro_plus", created=NOW + timedelta(days=1)).granted == 0
    assert _apply(engine, "pro_plus", paid=True).granted == 0
    assert [
        (g.period_key.split(":")[-1], g.amount, g.expires_at) for g in _plan_grants(engine)
    ] == [("pro", 1000, P2), ("pro_plus", 4000, P2)]
    assert verify(engine)["ok"]


def test_downgrade_waits_for_the_next_period_without_clawback(engine, policy):
    _setup(engine, policy)
    _apply(engine, "pro_plus", paid=True)
    balance = _user(engine).balance
    down = _apply(engine, "pro", created=NOW + timedelta(days=2))
    assert (down.granted, down.user_plan) == (0, "pro_plus")
    assert _user(engine).balance == balance
    with engine.connect() as conn:
        assert conn.execute(sa.select(subscriptions.c.plan)).scalar_one() == "pro"
    # a climb back inside the period owes nothing: the period already got pro_plus
    assert _apply(engine, "pro_plus", created=NOW + timedelta(days=3)).granted == 0
    _apply(engine, "pro", created=NOW + timedelta(days=4))
    renewal = _apply(engine, "pro", start=P2, end=P3, paid=True, created=P2, now=P2)
    assert (renewal.granted, renewal.user_plan) == (1000, "pro")


def test_an_older_change_does_not_overwrite_a_newer_one(engine, policy):
    _setup(engine, policy)
    _apply(engine, "pro", paid=True, created=NOW)
    stale = _apply(engine, "pro", status="past_due", created=NOW - timedelta(hours=1))
    assert stale.state_recorded is False
    with engine.connect() as conn:
        row = conn.execute(sa.select(subscriptions)).one()
    assert (row.status, row.last_event_created) == ("active", NOW)


def test_unlimited_plan_grants_nothing_but_moves_the_user(engine, policy):
    _setup(engine, policy)
    _apply(engine, "pro", paid=True)
    up = _apply(engine, "ultimate", created=NOW + timedelta(days=1))
    assert (up.granted, up.user_plan) == (0, "ultimate")


def test_an_ended_subscription_returns_the_user_to_the_default_plan_once(engine, policy):
    _setup(engine, policy)
    _apply(engine, "pro", paid=True)
    ended = _apply(
        engine, "pro", status="canceled", created=NOW + timedelta(days=1), ended_plan="free"
    )
    assert ended.user_plan == "free"
    balance = _user(engine).balance
    _apply(engine, "pro", status="canceled", created=NOW + timedelta(days=1), ended_plan="free")
    assert _user(engine).balance == balance  # a replay starts no second free period
    assert verify(engine)["ok"]


def test_unpaid_states_grant_nothing(engine, policy):
    _setup(engine, policy)
    for status in ("incomplete", "past_due", "unpaid", "paused"):
        assert _apply(engine, "pro", status=status, paid=True).granted == 0
    assert _plan_grants(engine) == []


def test_a_late_invoice_for_an_ended_period_grants_nothing_that_outlives_it(engine, policy):
    _setup(engine, policy)
    late = _apply(engine, "pro", paid=True, now=P2 + timedelta(days=2))
    assert late.granted == 0
    assert _plan_grants(engine) == []
    assert verify(engine)["ok"]


def test_ending_early_resumes_the_running_free_period_instead_of_granting_it_again(engine, policy):
    add_user(
        engine,
        "u1@example.com",
        user_id="u1",
        plan="free",
        actor="t",
        policy=policy,
        now=NOW - timedelta(days=1),
    )
    _apply(engine, "pro", paid=True)
    _apply(
        engine,
        "pro",
        status="canceled",
        created=NOW + timedelta(hours=1),
        now=NOW + timedelta(hours=1),
        ended_plan="free",
    )
    with engine.connect() as conn:
        free = (
            conn.execute(
                sa.select(grants.c.amount).where(
                    grants.c.user_id == "u1", grants.c.period_key.like("free:%")
                )
            )
            .scalars()
            .all()
        )
    assert free == [100]
    user = _user(engine)
    assert (user.plan, user.period_start) == ("free", NOW - timedelta(days=1))
    assert verify(engine)["ok"]
