"""One algorithm, two executors: the bare driver and SQLAlchemy answer alike, and a balance
counted as swept is the balance the sweep leaves."""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from helpers import new_user
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from creditctl.clock import utcnow
from creditctl.db.connection_settings import sqlite_moment, sqlite_time
from creditctl.db.engine import read
from creditctl.db.tables import users
from creditctl.errors import InsufficientCredits
from creditctl.ledger import balances, corrections, drivers, fastpath, holds, lookup, rules
from creditctl.ledger.policy import Policy
from creditctl.ledger.sql_executor import SqlExecutor
from creditctl.ledger.statements import STALE
from creditctl.ledger.transactions import run_write

_ids = itertools.count()


def test_sqlite_times_are_written_as_sqlalchemy_writes_them():
    from sqlalchemy.dialects.sqlite import pysqlite
    from sqlmodel.sql.sqltypes import UTCDateTime

    dialect = pysqlite.dialect()
    write = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    for moment in (
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 0, tzinfo=UTC).astimezone(),  # a local time zone
    ):
        stored = write(UTCDateTime().process_bind_param(moment, dialect))
        assert sqlite_time(moment) == stored
        assert sqlite_moment(stored) == moment


def _both(engine, database_url, operation):
    """The same operation on the bare driver and on a SQLAlchemy connection."""
    bare = drivers.on_url(database_url, 5000, operation, write=True)
    full = run_write(engine, lambda conn: operation(SqlExecutor(conn)))
    return bare, full


def test_both_executors_deduct_and_check_alike(engine, database_url, policy):
    new_user(engine, policy, "a")
    new_user(engine, policy, "b", plan="ultimate")
    now = utcnow()
    for user, amount in (("a", 3), ("b", 500), ("a@example.com", 2)):
        bare, full = _both(
            engine,
            database_url,
            lambda ex, u=user, n=amount: rules.deduct(
                ex, u, n, actor="t", policy=policy, now=now, ref="r"
            ),
        )
        same = ("user_id", "type", "amount", "unlimited", "plan", "held", "replayed")
        assert [getattr(bare, f) for f in same] == [getattr(full, f) for f in same]
        assert full.entry_id == bare.entry_id + 1
        assert full.available == bare.available + full.amount
    bare, full = _both(
        engine, database_url, lambda ex: rules.check(ex, "a", 1000, policy=policy, now=now)
    )
    assert bare.balance == full.balance and str(bare.refusal) == str(full.refusal)


def _scenario(engine, policy, grants, hold_plan, unlimited):
    """A user whose grants and holds were made 6 hours ago; some have expired since."""
    start = utcnow() - timedelta(hours=6)
    user = f"s{next(_ids)}"
    new_user(engine, policy, user, plan="ultimate" if unlimited else "free", now=start)
    for credits, hours in grants:
        corrections.grant(
            engine,
            user,
            credits,
            actor="t",
            reason="r",
            expires_at=None if hours is None else start + timedelta(hours=hours),
            now=start,
        )
    for credits, minutes in hold_plan:
        with contextlib.suppress(InsufficientCredits):  # more than there is: no hold
            holds.reserve(
                engine,
                user,
                credits,
                ttl=timedelta(minutes=minutes),
                actor="t",
                policy=policy,
                now=start + timedelta(minutes=1),
            )
    return user


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    grants=st.lists(
        st.tuples(st.integers(1, 40), st.one_of(st.none(), st.integers(1, 12))), max_size=4
    ),
    hold_plan=st.lists(st.tuples(st.integers(1, 60), st.integers(2, 720)), max_size=4),
    unlimited=st.booleans(),
)
def test_a_balance_counted_as_swept_is_what_the_sweep_leaves(
    engine, database_url, grants, hold_plan, unlimited
):
    policy = Policy()
    user = _scenario(engine, policy, grants, hold_plan, unlimited)

    def no_engine():
        pytest.fail("check stepped aside")

    counted = fastpath.check(
        fastpath.Database(database_url, 5000, no_engine), user, 1, policy=policy
    ).balance
    swept = balances.balance(engine, user)
    assert (counted.available, counted.held) == (swept.available, swept.held)


MOMENTS = {"never": None, "past": -60, "now": 0, "later": 60}


def test_stale_means_one_thing_in_python_and_in_sql(engine, database_url, policy):
    """A user is stale (an expiry due and not swept) by the same rule in the sweep's selection
    (SQL), the full path's check (datetimes), the bare driver's (SQLite's stored text) and the
    spending gate, which steps aside for exactly those users."""
    now = utcnow()
    expected = set()
    for grant_due, hold_due in itertools.product(MOMENTS, repeat=2):
        user = f"{grant_due}-{hold_due}"
        new_user(engine, policy, user)
        due = {
            column: None if MOMENTS[when] is None else now + timedelta(minutes=MOMENTS[when])
            for column, when in (("next_grant_expiry", grant_due), ("next_hold_expiry", hold_due))
        }
        with engine.begin() as conn:
            conn.execute(users.update().where(users.c.id == user).values(**due))
        if {grant_due, hold_due} & {"past", "now"}:
            expected.add(user)
    everyone = [f"{g}-{h}" for g, h in itertools.product(MOMENTS, repeat=2)]
    with read(engine) as conn:
        in_sql = set(conn.execute(select(users.c.id).where(STALE), {"now": now}).scalars())
        in_python = {u for u in everyone if lookup.needs_sweep(lookup.user_state(conn, u), now)}
    on_the_driver = drivers.on_url(
        database_url,
        5000,
        lambda ex: {u for u in everyone if rules.is_stale(rules.user_state(ex, u), ex.time(now))},
        write=False,
    )
    stepped_aside = set()
    for user in everyone:
        try:
            drivers.on_url(
                database_url,
                5000,
                lambda ex, u=user: rules.take(ex, u, 1, now=now, policy=policy),
                write=False,
            )
        except rules.SweepFirst:
            stepped_aside.add(user)
    assert in_sql == in_python == on_the_driver == stepped_aside == expected
