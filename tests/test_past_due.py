"""A failed payment: usage goes on through the grace period, then stops until paid up."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from helpers import one_error_line

from creditctl.accounts.users import add_user
from creditctl.billing.subscriptions import apply_subscription_change
from creditctl.errors import PaymentOverdue
from creditctl.ledger.corrections import adjust
from creditctl.ledger.policy import Policy
from creditctl.ledger.spending import deduct
from creditctl.ledger.transactions import run_write
from creditctl.support.account_view import account_view

START = datetime(2026, 11, 1, tzinfo=UTC)
FAILED = START + timedelta(days=3)
POLICY = Policy(past_due_grace_days=2)


def _subscription(engine, status, created, paid=False):
    run_write(
        engine,
        lambda conn: apply_subscription_change(
            conn,
            user_id="u1",
            subscription_id="sub_1",
            customer_id="cus_1",
            plan="pro",
            period_start=START,
            period_end=START + timedelta(days=30),
            status=status,
            stripe_created=created,
            actor="evt",
            now=created,
            paid=paid,
        ),
    )


@pytest.fixture
def overdue_user(engine):
    add_user(
        engine,
        "u1@example.com",
        user_id="u1",
        actor="t",
        policy=POLICY,
        plan="free",
        now=START - timedelta(days=1),
    )
    _subscription(engine, "active", START, paid=True)
    _subscription(engine, "past_due", FAILED)
    return engine


def test_usage_continues_during_the_grace_period(overdue_user):
    posting = deduct(
        overdue_user, "u1", 1, actor="t", policy=POLICY, now=FAILED + timedelta(days=1)
    )
    assert posting.amount == -1


def test_usage_stops_after_the_grace_period_with_a_way_out(overdue_user):
    later = FAILED + timedelta(days=2, seconds=1)
    with pytest.raises(PaymentOverdue) as refused:
        deduct(overdue_user, "u1", 1, actor="t", policy=POLICY, now=later)
    assert refused.value.exit_code == 3
    assert "grace period is over" in refused.value.message
    assert "creditctl stripe portal u1" in refused.value.message
    view = account_view(overdue_user, "u1", policy=POLICY, now=later)
    assert any("usage is suspended" in w for w in view["warnings"])
    # An operator's correction is not usage and still goes through.
    assert (
        adjust(overdue_user, "u1", -1, actor="op", reason="fix", policy=POLICY, now=later).amount
        == -1
    )


def test_a_paid_invoice_lifts_the_suspension(overdue_user):
    later = FAILED + timedelta(days=5)
    _subscription(overdue_user, "active", later, paid=True)
    assert deduct(overdue_user, "u1", 1, actor="t", policy=POLICY, now=later).amount == -1


def test_the_fast_path_refuses_an_overdue_user_too(overdue_user, database_url):
    from creditctl.ledger import fastpath

    database = fastpath.Database(database_url, 5000, lambda: overdue_user)
    with pytest.raises(PaymentOverdue):
        fastpath.deduct(database, "u1", 1, actor="t", policy=POLICY)
    lenient = Policy(past_due_grace_days=3650)
    assert fastpath.deduct(database, "u1", 1, actor="t", policy=lenient).amount == -1


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast-path", "full-path"])
def test_check_refuses_suspended_usage_like_deduct(overdue_user, cli, fast):
    """`check && render && deduct` must not render for a user whose usage is suspended."""
    env = {"CREDITCTL_PAST_DUE_GRACE_DAYS": "2", "CREDITCTL_FASTPATH": fast}
    with freeze_time(FAILED + timedelta(days=1)):
        assert cli("credits", "check", "u1", "1", env=env).exit_code == 0
    with freeze_time(FAILED + timedelta(days=2, seconds=1)):
        check = cli("credits", "check", "u1", "1", "--json", env=env)
        deduct = cli("credits", "deduct", "u1", "1", env=env)
    assert (check.exit_code, deduct.exit_code) == (3, 3)
    assert one_error_line(check.stderr) == one_error_line(deduct.stderr)
    assert "usage is suspended" in one_error_line(check.stderr)
    refusal = json.loads(check.stdout)
    assert (refusal["kind"], refusal["ok"], refusal["available"], refusal["needed"]) == (
        "PaymentOverdue",
        False,
        1105,
        1,
    )
