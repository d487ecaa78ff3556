"""The audit log of operators' actions, and `audit verify`: balances recomputed from entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Connection, Engine

from creditctl.clock import iso
from creditctl.db.engine import read
from creditctl.db.tables import allocations, audit_log, entries, grants, holds, users

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
    engine: Engine, *, user_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if user_id is not None:
        query = query.where(audit_log.c.user_id == user_id)
    with read(engine) as conn:
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


def verify(engine: Engine) -> dict[str, Any]:
    """Recompute every balance from the ledger, grants and holds; list each difference."""
    held_by_hold = (
        sa.select(func.coalesce(func.sum(allocations.c.amount), 0))
        .join_from(allocations, holds, allocations.c.hold_id == holds.c.id)
        .where(holds.c.user_id == users.c.id, holds.c.status == "open")
        .scalar_subquery()
    )
    per_user = sa.select(
        users.c.id,
        users.c.balance,
        users.c.held,
        _sum_by_user(entries.c.amount).label("ledger_sum"),
        _sum_by_user(grants.c.remaining).label("grants_remaining"),
        held_by_hold.label("held_in_holds"),
    ).order_by(users.c.id)
    running = sa.select(
        entries.c.id,
        entries.c.user_id,
        entries.c.balance_after,
        func.sum(entries.c.amount)
        .over(partition_by=entries.c.user_id, order_by=entries.c.id)
        .label("running"),
    ).subquery()
    broken_chain = sa.select(running).where(running.c.running != running.c.balance_after)
    with read(engine) as conn:
        rows = conn.execute(per_user).all()
        chain = conn.execute(broken_chain.limit(100)).all()
        entry_count = conn.execute(sa.select(func.count()).select_from(entries)).scalar_one()
    problems = []
    for row in rows:
        for what, expected in (
            ("ledger sum", row.ledger_sum),
            ("grants remaining", row.grants_remaining),
        ):
            if row.balance != expected:
                problems.append(
                    {
                        "user_id": row.id,
                        "check": what,
                        "cached": row.balance,
                        "recomputed": expected,
                    }
                )
        if row.held != row.held_in_holds:
            problems.append(
                {
                    "user_id": row.id,
                    "check": "held in open holds",
                    "cached": row.held,
                    "recomputed": row.held_in_holds,
                }
            )
    for row in chain:
        problems.append(
            {
                "user_id": row.user_id,
                "check": f"balance_after of entry {row.id}",
                "cached": row.balance_after,
                "recomputed": row.running,
            }
        )
    return {"users": len(rows), "entries": entry_count, "problems": problems, "ok": not problems}
