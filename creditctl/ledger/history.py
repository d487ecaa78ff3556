"""A user's ledger entries, as they were written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.clock import iso
from creditctl.db.engine import read
from creditctl.db.tables import entries
from creditctl.ledger.lookup import user_state

# --- history -----------------------------------------------------------------------------------


def history(
    engine: Engine,
    user: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The user's ledger entries, oldest first (the newest `limit` when given)."""
    with read(engine) as conn:
        user_id = user_state(conn, user).id
        return entries_of(conn, user_id, since=since, until=until, limit=limit)


def entries_of(
    conn: Connection,
    user_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """`history` in the caller's transaction, for a user id."""
    query = sa.select(entries).where(entries.c.user_id == user_id)
    if since is not None:
        query = query.where(entries.c.created_at >= since)
    if until is not None:
        query = query.where(entries.c.created_at < until)
    query = query.order_by(entries.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [entry_dict(row) for row in reversed(conn.execute(query).all())]


def entry_dict(row: Row) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": iso(row.created_at),
        "user_id": row.user_id,
        "type": row.type,
        "amount": row.amount,
        "balance_after": row.balance_after,
        "quantity": row.quantity,
        "description": row.description,
        "actor": row.actor,
        "reference": row.reference,
        "idempotency_key": row.idempotency_key,
        "grant_id": row.grant_id,
        "hold_id": row.hold_id,
        "reverses_entry_id": row.reverses_entry_id,
    }
