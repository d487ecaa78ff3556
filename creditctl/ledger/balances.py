"""A user's balance and whether a spend would go through, for callers holding an engine.

`balance` sweeps expired holds and grants first (in a write transaction, only when there is
something to sweep), so the expiry entries are in the ledger when its caller shows them.
`check` writes nothing: it counts them as swept in the same read (creditctl.ledger.rules).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from creditctl.clock import utcnow
from creditctl.db.engine import read
from creditctl.ledger import rules
from creditctl.ledger.policy import Policy
from creditctl.ledger.results import Balance
from creditctl.ledger.rules import SweepFirst
from creditctl.ledger.sql_executor import SqlExecutor
from creditctl.ledger.transactions import run_write


def balance(engine: Engine, user: str, *, now: datetime | None = None) -> Balance:
    """The user's balance, with expired grants and holds swept first."""
    now = now or utcnow()
    try:
        with read(engine) as conn:
            return rules.balance(SqlExecutor(conn, sweeps=False), user, now=now)
    except SweepFirst:
        return swept_balance(engine, user, now=now)


def swept_balance(engine: Engine, user: str, *, now: datetime) -> Balance:
    """The user's balance in one write transaction that sweeps first if anything expired: for
    a caller that already read the user and found something to sweep (SweepFirst)."""
    return run_write(engine, lambda conn: rules.balance(SqlExecutor(conn), user, now=now))


def check(
    engine: Engine, user: str, amount: int, *, policy: Policy, now: datetime | None = None
) -> rules.Verdict:
    """Would a deduct of `amount` go through now, and if not why; writes nothing."""
    with read(engine) as conn:
        return rules.check(SqlExecutor(conn), user, amount, policy=policy, now=now or utcnow())
