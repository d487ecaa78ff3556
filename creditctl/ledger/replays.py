"""Finding the first result of a request retried with the same idempotency key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from creditctl.ledger.results import Posting
from creditctl.ledger.rules import previous_entry
from creditctl.ledger.sql_executor import SqlExecutor


def find_previous(
    conn: Connection, user_id: str, key: str | None, request: str
) -> Mapping[str, Any] | None:
    """The entry an earlier request with this key wrote, or None; a different request conflicts
    (creditctl.ledger.rules.previous_entry, inside the caller's transaction)."""
    return previous_entry(SqlExecutor(conn), user_id, key, request)


def replayed(row: Mapping[str, Any], user_id: str) -> Posting:
    """The first result of a request retried with the same idempotency key."""
    return Posting(
        entry_id=row["id"],
        user_id=user_id,
        type=row["type"],
        amount=row["amount"],
        balance_after=row["balance_after"],
        replayed=True,
        hold_id=row["hold_id"],
        grant_id=row["grant_id"],
    )
