"""Sweeping what expired: lapsed holds give their credits back, lapsed grants expire."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.clock import utcnow
from creditctl.db.engine import read
from creditctl.db.tables import allocations, grants, holds, users
from creditctl.ledger.lookup import needs_sweep, user_state
from creditctl.ledger.postings import post_entry
from creditctl.ledger.statements import LOCK_USER, STALE, earlier
from creditctl.ledger.transactions import run_write

_DUE = sa.select(users.c.id).where(STALE).order_by(users.c.id)

# --- expiry ------------------------------------------------------------------------------------


def find_and_sweep(conn: Connection, user: str, now: datetime) -> str:
    """The id of the user (by id or email), with their expired grants and holds swept first
    so the balances an operator's write prints are current. It writes: call it in a write
    transaction."""
    state = user_state(conn, user)
    if needs_sweep(state, now):
        sweep_user(conn, state.id, now=now)
    return state.id


def sweep_user(conn: Connection, user_id: str, *, now: datetime) -> int:
    """Return expired holds' credits and expire lapsed grants; returns the entries written."""
    balance_now, held = conn.execute(LOCK_USER, {"uid": user_id}).one()
    written = 0
    lapsed = conn.execute(
        sa.select(holds.c.id, holds.c.reference)
        .where(
            holds.c.user_id == user_id,
            holds.c.status == "open",
            holds.c.expires_at <= now,
        )
        .order_by(holds.c.id)
    ).all()
    for hold in lapsed:
        returned = return_allocations(conn, hold.id, keep=0)
        conn.execute(
            holds.update().where(holds.c.id == hold.id).values(status="expired", settled_at=now)
        )
        balance_now, held = balance_now + returned, held - returned
        post_entry(
            conn,
            user_id=user_id,
            type="release",
            amount=returned,
            balance_after=balance_now,
            actor="system",
            now=now,
            hold_id=hold.id,
            reference=hold.reference,
            description=f"hold {hold.id} expired",
        )
        written += 1
    expired = conn.execute(
        sa.select(grants.c.id, grants.c.remaining)
        .where(
            grants.c.user_id == user_id,
            grants.c.remaining > 0,
            grants.c.expires_at <= now,
        )
        .order_by(grants.c.expires_at, grants.c.id)
    ).all()
    balance_now = _expire(conn, user_id, expired, balance_now, actor="system", now=now, why="")
    written += len(expired)
    conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(
            balance=balance_now,
            held=held,
            next_grant_expiry=_next_grant_expiry(user_id),
            next_hold_expiry=sa.select(func.min(holds.c.expires_at))
            .where(holds.c.user_id == user_id, holds.c.status == "open")
            .scalar_subquery(),
        )
    )
    return written


def expire_grants(
    conn: Connection, user_id: str, grant_ids: list[int], *, actor: str, now: datetime, why: str
) -> int:
    """Expire what remains of these grants of one user before their date; returns the credits.

    For a plan period that a new one replaces; `why` ends each entry's description.
    """
    if not grant_ids:
        return 0
    balance_now, _held = conn.execute(LOCK_USER, {"uid": user_id}).one()
    rows = conn.execute(
        sa.select(grants.c.id, grants.c.remaining)
        .where(grants.c.id.in_(grant_ids), grants.c.user_id == user_id, grants.c.remaining > 0)
        .order_by(grants.c.id)
    ).all()
    if not rows:
        return 0
    balance_now = _expire(conn, user_id, rows, balance_now, actor=actor, now=now, why=why)
    conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(balance=balance_now, next_grant_expiry=_next_grant_expiry(user_id))
    )
    return sum(row.remaining for row in rows)


def _expire(
    conn: Connection,
    user_id: str,
    rows: Sequence[Row],
    balance_now: int,
    *,
    actor: str,
    now: datetime,
    why: str,
) -> int:
    """Zero each grant's remainder with its expiry entry; returns the balance after them all."""
    for lapsed_grant in rows:
        conn.execute(grants.update().where(grants.c.id == lapsed_grant.id).values(remaining=0))
        balance_now -= lapsed_grant.remaining
        post_entry(
            conn,
            user_id=user_id,
            type="expiry",
            amount=-lapsed_grant.remaining,
            balance_after=balance_now,
            actor=actor,
            now=now,
            grant_id=lapsed_grant.id,
            description=f"grant {lapsed_grant.id} expired{why}",
        )
    return balance_now


def _next_grant_expiry(user_id: str) -> sa.ScalarSelect:
    return (
        sa.select(func.min(grants.c.expires_at))
        .where(grants.c.user_id == user_id, grants.c.remaining > 0)
        .scalar_subquery()
    )


def return_allocations(conn: Connection, hold_id: int, keep: int) -> int:
    """Give a hold's credits back to their grants, keeping `keep` (spent); returns what came back.

    Credits are spent from the soonest-expiring grants; the rest go back where they came from.
    The caller holds the user's lock.
    """
    rows = conn.execute(
        sa.select(allocations.c.grant_id, allocations.c.amount, grants.c.expires_at)
        .join_from(allocations, grants, allocations.c.grant_id == grants.c.id)
        .where(allocations.c.hold_id == hold_id)
        .order_by(grants.c.expires_at.is_(None), grants.c.expires_at, grants.c.id)
    ).all()
    returned, to_spend, earliest = 0, keep, None
    for row in rows:
        spent = min(row.amount, to_spend)
        to_spend -= spent
        back = row.amount - spent
        if back:
            conn.execute(
                grants.update()
                .where(grants.c.id == row.grant_id)
                .values(remaining=grants.c.remaining + back)
            )
            returned += back
            if row.expires_at is not None and (earliest is None or row.expires_at < earliest):
                earliest = row.expires_at
    if earliest is not None:
        conn.execute(
            users.update()
            .where(
                users.c.id
                == sa.select(holds.c.user_id).where(holds.c.id == hold_id).scalar_subquery()
            )
            .values(next_grant_expiry=earlier(users.c.next_grant_expiry, earliest))
        )
    return returned


def sweep_due(engine: Engine, *, now: datetime | None = None) -> dict[str, int]:
    """Sweep every user with an expired hold or grant; each user in their own transaction."""
    now = now or utcnow()
    with read(engine) as conn:
        due = conn.execute(_DUE, {"now": now}).scalars().all()
    written = 0
    for user_id in due:
        written += run_write(engine, partial(_sweep_one, user_id=user_id, now=now))
    return {"users": len(due), "entries": written}


def _sweep_one(conn: Connection, *, user_id: str, now: datetime) -> int:
    return sweep_user(conn, user_id, now=now)
