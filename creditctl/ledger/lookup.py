"""Finding a user's ledger state by id or email."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection, Row

from creditctl.ledger.statements import STATE
from creditctl.ledger.sweep import sweep_user
from creditctl.ledger.usage import by_email, lookup_key, unknown_user

# --- reading ---------------------------------------------------------------------------------


def user_state(conn: Connection, user: str) -> Row:
    row = conn.execute(STATE[by_email(user)], {"who": lookup_key(user)}).first()
    if row is None:
        raise unknown_user(user)
    return row


def current_user(conn: Connection, user: str, now: datetime) -> str:
    """The user's id, with expired grants and holds swept first so balances printed are current."""
    state = user_state(conn, user)
    if needs_sweep(state, now):
        sweep_user(conn, state.id, now=now)
    return state.id


def needs_sweep(row: Row, now: datetime) -> bool:
    """True when a grant or hold of this user has expired and not yet been swept."""
    return any(
        moment is not None and moment <= now
        for moment in (row.next_grant_expiry, row.next_hold_expiry)
    )
