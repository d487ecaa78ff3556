"""Finding the first result of a request retried with the same idempotency key."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from creditctl.db.tables import entries
from creditctl.ledger.idempotency import key_conflict
from creditctl.ledger.results import Posting
from creditctl.ledger.statements import LOCK_USER

FIND_KEY = sa.select(
    entries.c.id,
    entries.c.request_hash,
    entries.c.type,
    entries.c.amount,
    entries.c.balance_after,
    entries.c.hold_id,
    entries.c.grant_id,
    entries.c.created_at,
).where(entries.c.user_id == sa.bindparam("uid"), entries.c.idempotency_key == sa.bindparam("key"))


def find_previous(conn: Connection, user_id: str, key: str | None, request: str) -> Row | None:
    """The entry an earlier request with this key wrote, or None; a different request conflicts.

    The user's row is locked first: a duplicate that waited for the first request to commit
    then sees its entry, instead of being refused by the balance the first one spent.
    """
    if key is None:
        return None
    conn.execute(LOCK_USER, {"uid": user_id})
    row = conn.execute(FIND_KEY, {"uid": user_id, "key": key}).first()
    if row is not None and row.request_hash != request:
        raise key_conflict(key, row.id)
    return row


def replayed(row: Row, user_id: str, **extra: Any) -> Posting:
    """The first result of a request retried with the same idempotency key."""
    return Posting(
        entry_id=row.id,
        user_id=user_id,
        type=row.type,
        amount=row.amount,
        balance_after=row.balance_after,
        replayed=True,
        hold_id=row.hold_id,
        grant_id=row.grant_id,
        extra=extra,
    )
