"""The fast path runs: deduct, check and balance finish without ever asking for the engine.

The engine factory fails the test if called, so a fast path that stepped aside to the full
path (SQLAlchemy) is caught, by id and by email, with and without a key, on both databases.
The in-process deduct runs the same statements on a connection from the engine's pool, never
through SQLAlchemy's Connection; and a step-aside costs one SQLAlchemy transaction, not two.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from helpers import new_user, snapshot
from sqlalchemy import event

from creditctl.clock import utcnow
from creditctl.db.engine import make_engine
from creditctl.errors import InsufficientCredits, PaymentOverdue, UnknownUser
from creditctl.ledger import corrections, fastpath, history, spending
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


# --- the in-process deduct, and what a step-aside costs ----------------------------------------


@contextmanager
def watched(engine):
    """What the engine is asked for: connections from its pool, and statements run through
    SQLAlchemy's Connection (which the bare driver on a pooled connection never uses)."""
    seen = {"checkouts": 0, "sqlalchemy": []}

    def checkout(*_):
        seen["checkouts"] += 1

    def execute(_conn, _cursor, statement, *_):
        seen["sqlalchemy"].append(statement)

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "before_cursor_execute", execute)
    try:
        yield seen
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "before_cursor_execute", execute)


@pytest.fixture
def stale(engine, user):
    """u1 with a grant of 10 that expired an hour ago, not swept yet."""
    past = utcnow() - timedelta(hours=2)
    corrections.grant(
        engine, "u1", 10, actor="t", reason="r", expires_at=past + timedelta(hours=1), now=past
    )
    return "u1"


@pytest.mark.parametrize("who", WHO)
def test_the_in_process_deduct_runs_on_a_pooled_bare_connection(engine, policy, user, who):
    full_balance(engine, "u1")  # the pool's first connection, and the dialect's first look
    with watched(engine) as seen:
        for key in (None, "k1", "k1"):  # plain, keyed, replayed
            spending.deduct(engine, who, 1, actor="t", policy=policy, key=key)
    assert seen == {"checkouts": 3, "sqlalchemy": []}
    assert full_balance(engine, "u1").available == 103


def test_the_watch_sees_the_sqlalchemy_path(engine, policy, stale):
    """Control: a user with something to sweep takes SQLAlchemy's transaction, and it shows."""
    with watched(engine) as seen:
        spending.deduct(engine, stale, 1, actor="t", policy=policy)
    assert seen["checkouts"] == 2 and seen["sqlalchemy"]


def test_a_fast_deduct_that_steps_aside_opens_one_transaction_more(database_url, policy, stale):
    """The bare driver stepped aside (a sweep is due): the full path does not try it again."""
    full = make_engine(database_url)
    try:
        with watched(full) as seen:
            fast = fastpath.Database(database_url, 5000, lambda: full)
            spent = fastpath.deduct(fast, stale, 1, actor="t", policy=policy)
        assert seen["checkouts"] == 1
        assert spent.available == 104  # the expired 10 were swept first
    finally:
        full.dispose()


def test_a_fast_balance_that_steps_aside_opens_one_transaction_more(database_url, stale):
    full = make_engine(database_url)
    try:
        with watched(full) as seen:
            found = fastpath.balance(fastpath.Database(database_url, 5000, lambda: full), stale)
        assert seen["checkouts"] == 1
        assert found.available == 105
    finally:
        full.dispose()
