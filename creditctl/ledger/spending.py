"""Spending credits: taking them from the soonest-expiring grants, or refusing.

The rules are creditctl.ledger.rules'; this module runs them for callers holding an engine
(the daemon, `run`, the tests, the fast path's fallback) or a connection (holds and
corrections, inside their own transactions).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy.engine import Connection, Engine

from creditctl.clock import utcnow
from creditctl.ledger import drivers, rules
from creditctl.ledger.policy import Policy
from creditctl.ledger.results import Deducted, Taken
from creditctl.ledger.rules import NO_GRANT, StepAside
from creditctl.ledger.sql_executor import SqlExecutor
from creditctl.ledger.transactions import run_write


def take(
    conn: Connection,
    user: str,
    amount: int,
    *,
    now: datetime,
    policy: Policy,
    prefer_grant: int = NO_GRANT,
    hold: tuple[int, datetime] | None = None,
    usage: bool = True,
) -> Taken:
    """Take `amount` credits inside the caller's transaction, or refuse (see rules.take)."""
    return rules.take(
        SqlExecutor(conn),
        user,
        amount,
        now=now,
        policy=policy,
        prefer_grant=prefer_grant,
        hold=hold,
        usage=usage,
    )


def deduct(
    engine: Engine,
    user: str,
    amount: int,
    *,
    actor: str,
    policy: Policy,
    ref: str | None = None,
    key: str | None = None,
    description: str = "",
    now: datetime | None = None,
) -> Deducted:
    """Spend `amount` credits, or refuse with InsufficientCredits and change nothing.

    The common case runs on a connection borrowed from the engine's pool, with the same
    statements as the CLI's fast path and none of SQLAlchemy's per-statement work; a user
    with something to sweep, or a retried key that raced, goes through SQLAlchemy.
    """
    operation = partial(
        rules.deduct,
        user=user,
        amount=amount,
        actor=actor,
        policy=policy,
        now=now or utcnow(),
        ref=ref,
        key=key,
        description=description,
    )
    try:
        return drivers.on_engine(
            engine, operation, write=True, outcome_unknown=lambda: rules.outcome_unknown(user, key)
        )
    except StepAside:
        return run_write(engine, lambda conn: operation(SqlExecutor(conn)))


def deduct_on_sqlalchemy(
    engine: Engine,
    user: str,
    amount: int,
    *,
    actor: str,
    policy: Policy,
    now: datetime,
    ref: str | None = None,
    key: str | None = None,
) -> Deducted:
    """deduct in one SQLAlchemy transaction, without trying the bare driver first: for the
    fast path, whose bare driver already stepped aside (it would only step aside again)."""

    def operation(conn: Connection) -> Deducted:
        ex = SqlExecutor(conn)
        return rules.deduct(ex, user, amount, actor=actor, policy=policy, now=now, ref=ref, key=key)

    return run_write(engine, operation)
