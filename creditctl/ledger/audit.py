"""The audit log of operators' actions, and `audit verify`: balances recomputed from entries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Connection, Engine

from creditctl.clock import iso
from creditctl.db.engine import read
from creditctl.db.tables import allocations, audit_log, entries, grants, holds, users
from creditctl.ledger.lookup import user_state

INSERT_RECORD = audit_log.insert()


def record(
    conn: Connection,
    *,
    operator: str,
    action: str,
    reason: str,
    now: datetime,
    user_id: str | None = None,
    entry_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write who did what and why, in the caller's transaction."""
    conn.execute(
        INSERT_RECORD,
        {
            "operator": operator,
            "action": action,
            "user_id": user_id,
            "entry_id": entry_id,
            "reason": reason,
            "details": details or {},
            "created_at": now,
        },
    )


def audit_records(
    engine: Engine, *, user: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest `limit` records, oldest first; only those about `user` (id or email) if given."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    with read(engine) as conn:
        if user is not None:
            query = query.where(audit_log.c.user_id == user_state(conn, user).id)
        rows = conn.execute(query).all()
    return [
        {
            "id": r.id,
            "created_at": iso(r.created_at),
            "operator": r.operator,
            "action": r.action,
            "user_id": r.user_id,
            "entry_id": r.entry_id,
            "reason": r.reason,
            "details": r.details,
        }
        for r in reversed(rows)
    ]


def _sum_by_user(column: Any, *where: Any) -> sa.ScalarSelect:
    table = column.table
    return (
        sa.select(func.coalesce(func.sum(column), 0))
        .where(table.c.user_id == users.c.id, *where)
        .scalar_subquery()
    )


def _per_user() -> sa.Select:
    held_by_hold = (
        sa.select(func.coalesce(func.sum(allocations.c.amount), 0))
        .join_from(allocations, holds, allocations.c.hold_id == holds.c.id)
        .where(holds.c.user_id == users.c.id, holds.c.status == "open")
        .scalar_subquery()
    )
    return sa.select(
        users.c.id,
        users.c.balance,
        users.c.held,
        _sum_by_user(entries.c.amount).label("ledger_sum"),
        _sum_by_user(grants.c.remaining).label("grants_remaining"),
        held_by_hold.label("held_in_holds"),
    ).order_by(users.c.id)


def _broken_chain() -> sa.Select:
    running = sa.select(
        entries.c.id,
        entries.c.user_id,
        entries.c.balance_after,
        func.sum(entries.c.amount)
        .over(partition_by=entries.c.user_id, order_by=entries.c.id)
        .label("running"),
    ).subquery()
    return sa.select(running).where(running.c.running != running.c.balance_after).limit(100)


# Credits of a grant that open holds took: they come back to it when the hold is released.
_ON_HOLD = (
    sa.select(func.coalesce(func.sum(allocations.c.amount), 0))
    .join_from(allocations, holds, allocations.c.hold_id == holds.c.id)
    .where(allocations.c.grant_id == grants.c.id, holds.c.status == "open")
    .scalar_subquery()
)


def _overdrawn_grants() -> sa.Select:
    """Grants holding more than they gave: what remains plus what is on hold over the amount."""
    kept = grants.c.remaining + _ON_HOLD
    return (
        sa.select(grants.c.id, grants.c.user_id, grants.c.amount, kept.label("kept"))
        .where(kept > grants.c.amount)
        .order_by(grants.c.id)
        .limit(100)
    )


def _revived_grants() -> sa.Select:
    """Reversed grants that still count: a reversal takes back all a grant gave, so after it
    the grant has nothing left, nothing on an open hold, and nothing more to expire."""
    granting, reversal, expiry = (entries.alias(n) for n in ("granting", "reversal", "expiry"))
    expired_after = (
        sa.select(func.coalesce(func.sum(-expiry.c.amount), 0))
        .where(
            expiry.c.grant_id == grants.c.id,
            expiry.c.type == "expiry",
            expiry.c.id > reversal.c.id,
        )
        .scalar_subquery()
    )
    kept = grants.c.remaining + _ON_HOLD + expired_after
    return (
        sa.select(
            grants.c.id, grants.c.user_id, reversal.c.id.label("reversal_id"), kept.label("kept")
        )
        .join_from(grants, granting, granting.c.grant_id == grants.c.id)
        .join(reversal, reversal.c.reverses_entry_id == granting.c.id)
        .where(granting.c.amount > 0, kept > 0)
        .order_by(grants.c.id)
        .limit(100)
    )


def verify(engine: Engine) -> dict[str, Any]:
    """Recompute every balance from the ledger, grants and holds; list each difference.

    Per user: the cached balance equals the sum of their entries and of their grants'
    remaining credits, the cached held equals what their open holds took, and each entry's
    balance_after is the running sum. Per grant: remaining plus on hold is at most its amount,
    and a reversed grant keeps nothing (so a released hold cannot refill it). One snapshot.
    """
    with read(engine) as conn:
        rows = conn.execute(_per_user()).all()
        chain = conn.execute(_broken_chain()).all()
        overdrawn = conn.execute(_overdrawn_grants()).all()
        revived = conn.execute(_revived_grants()).all()
        entry_count = conn.execute(sa.select(func.count()).select_from(entries)).scalar_one()
    problems = [*_user_problems(rows)]
    problems += [
        _problem(row.user_id, f"balance_after of entry {row.id}", row.balance_after, row.running)
        for row in chain
    ]
    problems += [
        _problem(row.user_id, f"grant {row.id} remaining + on hold", row.kept, row.amount)
        for row in overdrawn
    ]
    problems += [
        _problem(row.user_id, f"grant {row.id} reversed by entry {row.reversal_id}", row.kept, 0)
        for row in revived
    ]
    return {"users": len(rows), "entries": entry_count, "problems": problems, "ok": not problems}


def _user_problems(rows: Sequence[sa.Row]) -> list[dict[str, Any]]:
    problems = []
    for row in rows:
        for what, expected in (
            ("ledger sum", row.ledger_sum),
            ("grants remaining", row.grants_remaining),
        ):
            if row.balance != expected:
                problems.append(_problem(row.id, what, row.balance, expected))
        if row.held != row.held_in_holds:
            problems.append(_problem(row.id, "held in open holds", row.held, row.held_in_holds))
    return problems


def _problem(user_id: str, check: str, cached: int, recomputed: int) -> dict[str, Any]:
    return {"user_id": user_id, "check": check, "cached": cached, "recomputed": recomputed}
