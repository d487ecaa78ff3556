"""Appending ledger entries and creating grants: the only writers of both."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from creditctl.ledger.results import Posting
from creditctl.ledger.rules import entry_values, unknown_user
from creditctl.ledger.statements import CREDIT, CREDIT_NO_EXPIRY, INSERT_ENTRY, INSERT_GRANT

ENTRY_TYPE_FOR_SOURCE = {
    "plan": "grant",
    "bonus": "bonus",
    "promotion": "bonus",
    "admin": "grant",
    "refund": "refund",
}


# --- writing ---------------------------------------------------------------------------------


def post_entry(
    conn: Connection,
    *,
    user_id: str,
    type: str,
    amount: int,
    balance_after: int,
    actor: str,
    now: datetime,
    **fields: Any,
) -> int:
    """Append one ledger entry; returns its id. `fields` are more of rules.ENTRY_COLUMNS."""
    values = entry_values(
        user_id=user_id,
        type=type,
        amount=amount,
        balance_after=balance_after,
        actor=actor,
        created_at=now,
        **fields,
    )
    return conn.execute(INSERT_ENTRY, values).scalar_one()


def add_grant(
    conn: Connection,
    *,
    user_id: str,
    source: str,
    amount: int,
    actor: str,
    now: datetime,
    expires_at: datetime | None = None,
    period_key: str | None = None,
    entry_type: str | None = None,
    **entry_fields: Any,
) -> Posting:
    """Create a grant and its ledger entry, crediting the user's balance."""
    params = {"uid": user_id, "n": amount, "expires": expires_at}
    statement = CREDIT if expires_at is not None else CREDIT_NO_EXPIRY
    balance_after = conn.execute(statement, params).scalar_one_or_none()
    if balance_after is None:
        raise unknown_user(user_id)
    grant_id = conn.execute(
        INSERT_GRANT,
        {
            "user_id": user_id,
            "source": source,
            "amount": amount,
            "remaining": amount,
            "expires_at": expires_at,
            "period_key": period_key,
            "created_at": now,
        },
    ).scalar_one()
    kind = entry_type or ENTRY_TYPE_FOR_SOURCE[source]
    entry_id = post_entry(
        conn,
        user_id=user_id,
        type=kind,
        amount=amount,
        balance_after=balance_after,
        actor=actor,
        now=now,
        grant_id=grant_id,
        **entry_fields,
    )
    return Posting(
        entry_id=entry_id,
        user_id=user_id,
        type=kind,
        amount=amount,
        balance_after=balance_after,
        grant_id=grant_id,
    )
