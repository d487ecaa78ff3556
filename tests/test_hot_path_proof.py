"""The fast path runs: deduct, check and balance finish without ever asking for the engine.

The engine factory fails the test if called, so a fast path that stepped aside to the full
path (SQLAlchemy) is caught, by id and by email, with and without a key, on both databases.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import new_user, snapshot

from creditctl.clock import utcnow
from creditctl.errors import InsufficientCredits, PaymentOverdue, UnknownUser
from creditctl.ledger import corrections, fastpath, history
from creditctl.ledger.audit import verify
from creditctl.ledger.balances import balance as full_balance
from creditctl.ledger.policy import Policy

WHO = ["u1", " U1@Example.COM "]
KEYS = [None, "render-42"]


def no_engine():
    pytest.fail("the fast path stepped aside to the full path (the engine was asked for)")


@pytest.fixture
def fast(database_url) -> fastpath.Database:
    return fastpath.Database(database_url, 5000, no_engine)


@pytest.fixture
def user(engine, policy):
    new_user(engine, policy, "u1")
    return "u1"


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("key", KEYS)
def test_deduct_runs_on_the_fast_path(fast, engine, policy, user, who, key):
    spent = fastpath.deduct(fast, who, 7, actor="t", policy=policy, ref="r1", key=key)
    assert (spent.user_id, spent.amount, spent.available, spent.replayed) == ("u1", -7, 98, False)
    (last,) = [e for e in history.history(engine, "u1") if e["type"] == "usage"]
    assert (last["id"], last["amount"], last["balance_after"], last["reference"]) == (
        spent.entry_id,
        -7,
        98,
        "r1",
    )
    if key is not None:
        again = fastpath.deduct(fast, who, 7, actor="t", policy=policy, ref="r1", key=key)
        assert (again.entry_id, again.replayed, again.available) == (spent.entry_id, True, 98)
    assert full_balance(engine, "u1").available == 98
    assert verify(engine)["ok"]


@pytest.mark.parametrize("who", WHO)
def test_check_and_balance_run_on_the_fast_path(fast, engine, policy, user, who):
    before = snapshot(engine)
    found = fastpath.balance(fast, who)
    assert (found.user_id, found.email, found.available, found.held) == (
        "u1",
        "u1@example.com",
        105,
        0,
    )
    yes = fastpath.check(fast, who, 105, policy=policy)
    assert (yes.ok, yes.balance.available) == (True, 105)
    no = fastpath.check(fast, who, 106, policy=policy)
    assert not no.ok and isinstance(no.refusal, InsufficientCredits)
    assert snapshot(engine) == before


def test_refusals_are_decided_on_the_fast_path(fast, engine, policy, user):
    before = snapshot(engine)
    with pytest.raises(InsufficientCredits):
        fastpath.deduct(fast, "u1", 106, actor="t", policy=policy)
    for call in (
        lambda: fastpath.deduct(fast, "nobody", 1, actor="t", policy=policy),
        lambda: fastpath.check(fast, "nobody@example.com", 1, policy=policy),
        lambda: fastpath.balance(fast, "nobody"),
    ):
        with pytest.raises(UnknownUser):
            call()
    assert snapshot(engine) == before


def test_unlimited_and_suspended_users_on_the_fast_path(fast, engine, policy, database_url):
    new_user(engine, policy, "u9", plan="ultimate")
    spent = fastpath.deduct(fast, "u9", 500, actor="t", policy=policy)
    assert (spent.amount, spent.unlimited, spent.available) == (0, True, 5)
    assert fastpath.check(fast, "u9", 10**6, policy=policy).ok
    with engine.begin() as conn:  # a failed payment long past the grace period
        conn.exec_driver_sql(
            "UPDATE users SET past_due_since = :since WHERE id = 'u9'"
            if database_url.startswith("sqlite")
            else "UPDATE users SET past_due_since = %(since)s WHERE id = 'u9'",
            {"since": _stored(database_url, utcnow() - timedelta(days=30))},
        )
    with pytest.raises(PaymentOverdue):
        fastpath.deduct(fast, "u9", 1, actor="t", policy=policy)
    assert isinstance(fastpath.check(fast, "u9", 1, policy=policy).refusal, PaymentOverdue)


def test_the_guard_sees_a_step_aside(fast, engine, policy, user):
    """Control: a deduct for a user with an expired grant must sweep, which only the full path
    does; the failing engine factory catches it."""
    past = utcnow() - timedelta(hours=2)
    corrections.grant(
        engine, "u1", 10, actor="t", reason="r", expires_at=past + timedelta(hours=1), now=past
    )
    with pytest.raises(pytest.fail.Exception):
        fastpath.deduct(fast, "u1", 1, actor="t", policy=Policy())
    # ... while check counts the expired grant as gone without writing, on the fast path.
    assert fastpath.check(fast, "u1", 1, policy=Policy()).balance.available == 105


def _stored(database_url: str, moment):
    from creditctl.db.connection_settings import sqlite_time

    return sqlite_time(moment) if database_url.startswith("sqlite") else moment
