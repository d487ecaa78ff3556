"""Users: created with a welcome grant and a first plan period; found by id, email or customer."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import or_
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.accounts.plans import get_plan
from creditctl.clock import iso, period_end, utcnow
from creditctl.db.engine import read
from creditctl.db.tables import grants, users
from creditctl.errors import DuplicateUser
from creditctl.ledger.audit import record
from creditctl.ledger.lookup import user_state
from creditctl.ledger.policy import Policy
from creditctl.ledger.postings import add_grant
from creditctl.ledger.transactions import run_write
from creditctl.parsing.identity import check_user_id, parse_email, parse_search
from creditctl.parsing.text import check_name


def add_user(
    engine: Engine,
    email: str,
    *,
    actor: str,
    policy: Policy,
    plan: str | None = None,
    user_id: str | None = None,
    name: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Create a user with the welcome grant and, on a free plan, its first period's credits.

    Without a plan the user starts on the policy's default plan (credits.default_plan).
    """
    now = now or utcnow()
    name = check_name(name)
    email = parse_email(email)
    user_id = check_user_id(user_id) if user_id else f"usr_{secrets.token_hex(6)}"
    plan_name = plan or policy.default_plan

    def operation(conn: Connection) -> dict[str, Any]:
        _refuse_duplicate(conn, email, user_id)
        plan_row = get_plan(conn, plan_name)
        conn.execute(
            users.insert().values(
                id=user_id,
                email=email,
                email_key=email.lower(),
                name=name,
                plan=plan_name,
                created_at=now,
            )
        )
        if policy.welcome_grant:
            add_grant(
                conn,
                user_id=user_id,
                source="bonus",
                amount=policy.welcome_grant,
                actor=actor,
                now=now,
                description="welcome grant",
            )
        start_local_period(conn, user_id, plan_row, start=now, actor=actor)
        record(
            conn,
            operator=actor,
            action="user.add",
            user_id=user_id,
            reason="new user",
            now=now,
            details={"email": email, "plan": plan_name},
        )
        return show(conn, user_id)

    return run_write(engine, operation)


def start_local_period(
    conn: Connection, user_id: str, plan_row: Row, *, start: datetime, actor: str
) -> None:
    """Plans without a price (free) are renewed here, not by Stripe: grant one period's credits.

    A user coming back to the plan while an earlier period of it still runs (a paid
    subscription that ended early) resumes that period instead of getting its credits twice.
    """
    if plan_row.amount != 0 or plan_row.credits is None:
        return
    running = _running_local_period(conn, user_id, plan_row, start)
    if running is not None:
        conn.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(period_start=running[0], period_end=running[1])
        )
        return
    end = period_end(start, plan_row.interval)
    conn.execute(
        users.update().where(users.c.id == user_id).values(period_start=start, period_end=end)
    )
    if plan_row.credits > 0:
        add_grant(
            conn,
            user_id=user_id,
            source="plan",
            amount=plan_row.credits,
            actor=actor,
            now=start,
            expires_at=None if plan_row.rollover else end,
            period_key=local_period_key(plan_row.name, start),
            description=f"{plan_row.name} plan credits until {iso(end)}",
        )


def _running_local_period(
    conn: Connection, user_id: str, plan_row: Row, start: datetime
) -> tuple[datetime, datetime] | None:
    """(start, end) of the plan's latest local period if it still runs at `start`.

    A rollover plan's credits never expire, so the period's end is not on its grant: it is
    one interval after the start its period key names.
    """
    latest = conn.execute(
        sa.select(grants.c.period_key, grants.c.expires_at)
        .where(
            grants.c.user_id == user_id,
            grants.c.source == "plan",
            grants.c.period_key.startswith(f"{plan_row.name}:", autoescape=True),
        )
        .order_by(grants.c.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    began = datetime.fromisoformat(latest.period_key.split(":", 1)[1])
    ends = latest.expires_at or period_end(began, plan_row.interval)
    return (began, ends) if ends > start else None


def local_period_key(plan: str, start: datetime) -> str:
    """Names one local period of a plan, so its credits are granted once."""
    return f"{plan}:{start.isoformat()}"


def _refuse_duplicate(conn: Connection, email: str, user_id: str) -> None:
    clash = conn.execute(
        sa.select(users.c.id, users.c.email).where(
            or_(users.c.email_key == email.lower(), users.c.id == user_id)
        )
    ).first()
    if clash is None:
        return
    if clash.id == user_id:
        raise DuplicateUser(f"a user with id {user_id!r} already exists ({clash.email})")
    raise DuplicateUser(f"a user with email {clash.email} already exists (id {clash.id})")


def show(conn: Connection, user: str) -> dict[str, Any]:
    row = conn.execute(sa.select(users).where(users.c.id == user_state(conn, user).id)).one()
    return user_dict(row)


def user_dict(row: Row) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "plan": row.plan,
        "balance": row.balance,
        "held": row.held,
        "stripe_customer_id": row.stripe_customer_id,
        "created_at": iso(row.created_at),
        "period_start": iso(row.period_start),
        "period_end": iso(row.period_end),
    }


def show_user(engine: Engine, user: str) -> dict[str, Any]:
    with read(engine) as conn:
        return show(conn, user)


def search_users(engine: Engine, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Users whose email contains `query`, or whose id or Stripe customer id is `query`."""
    text = parse_search(query)
    pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    condition = or_(
        users.c.id == text,
        users.c.stripe_customer_id == text,
        users.c.email_key.like(pattern, escape="\\"),
    )
    with read(engine) as conn:
        rows = conn.execute(
            sa.select(users).where(condition).order_by(users.c.email_key).limit(limit)
        ).all()
    return [user_dict(row) for row in rows]


def list_users(engine: Engine, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    with read(engine) as conn:
        rows = conn.execute(
            sa.select(users).order_by(users.c.created_at, users.c.id).limit(limit).offset(offset)
        ).all()
    return [user_dict(row) for row in rows]
