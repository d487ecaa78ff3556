"""Finding a user's ledger state by id or email, without writing (sweeping is sweep's)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection, Row

from creditctl.ledger.rules import by_email, is_stale, lookup_key, unknown_user
from creditctl.ledger.statements import STATE


def user_state(conn: Connection, user: str) -> Row:
    row = conn.execute(STATE[by_email(user)], {"who": lookup_key(user)}).first()
    if row is None:
        raise unknown_user(user)
    return row


def needs_sweep(row: Row, now: datetime) -> bool:
    """True when a grant or hold of this user has expired and not yet been swept."""
    return is_stale(row._mapping, now)
