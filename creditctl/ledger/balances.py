"""A user's balance, with expired grants and holds counted as swept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection, Engine, Row

from creditctl.clock import utcnow
from creditctl.db.engine import read
from creditctl.ledger.lookup import needs_sweep, user_state
from creditctl.ledger.results import Balance
from creditctl.ledger.sweep import sweep_user
from creditctl.ledger.transactions import run_write


def balance(engine: Engine, user: str, *, now: datetime | None = None) -> Balance:
    """The user's balance, counting expired grants and holds as swept."""
    now = now or utcnow()
    with read(engine) as conn:
        row = user_state(conn, user)
    if needs_sweep(row, now):
        row = run_write(engine, lambda conn: _swept_state(conn, row.id, now))
    return _balance_of(row)


def _swept_state(conn: Connection, user_id: str, now: datetime) -> Row:
    sweep_user(conn, user_id, now=now)
    return user_state(conn, user_id)


def _balance_of(row: Row) -> Balance:
    return Balance(
        user_id=row.id,
        email=row.email,
        plan=row.plan,
        unlimited=row.credits is None,
        available=row.balance,
        held=row.held,
    )
