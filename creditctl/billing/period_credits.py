"""A subscription period's plan credits: granted once, topped up on an upgrade.

Keyed by (subscription, period, plan) through the grants' unique `period_key`, so whichever
path sees a change first applies it, exactly once:

- a period's first plan credits come with its paid invoice (`paid=True`);
- an upgrade inside a credited period tops the period up to the new plan's credits at once
  (the difference), expiring at the period's end;
- a downgrade takes effect at the next period: no clawback.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Connection, Row

from creditctl.clock import iso
from creditctl.db.tables import grants, plans
from creditctl.ledger.postings import add_grant


def period_prefix(subscription_id: str, period_start: datetime) -> str:
    """The period_key prefix of a subscription period's plan grants."""
    return f"{subscription_id}:{int(period_start.timestamp())}:"


def plan_credits(conn: Connection, plan: str | None) -> int | None:
    """A plan's credits per period; None for unlimited or an unknown plan."""
    if plan is None:
        return None
    return conn.execute(sa.select(plans.c.credits).where(plans.c.name == plan)).scalar()


def top_up(
    conn: Connection,
    user_id: str,
    subscription_id: str,
    plan: str,
    period_start: datetime,
    period_end: datetime | None,
    *,
    paid: bool,
    recorded: Row | None,
    actor: str,
    now: datetime,
) -> int:
    """Grant what `plan` gives a period beyond what the period already got; returns the grant."""
    prefix = period_prefix(subscription_id, period_start)
    level = conn.execute(
        sa.select(func.coalesce(func.sum(grants.c.amount), 0)).where(
            grants.c.user_id == user_id,
            grants.c.source == "plan",
            grants.c.period_key.startswith(prefix, autoescape=True),
        )
    ).scalar_one()
    if level == 0 and not paid:
        return 0  # the period's first credits come with its paid invoice
    target = plan_credits(conn, plan) or 0
    if paid and recorded is not None and recorded.current_period_start == period_start:
        # An upgrade recorded before the invoice was: the period is owed the higher plan.
        target = max(target, plan_credits(conn, recorded.plan) or 0)
    key = prefix + plan
    taken = conn.execute(
        sa.select(grants.c.id).where(grants.c.user_id == user_id, grants.c.period_key == key)
    ).first()
    if target <= level or taken is not None:
        return 0
    rollover = conn.execute(sa.select(plans.c.rollover).where(plans.c.name == plan)).scalar()
    if period_end is not None and period_end <= now and not rollover:
        return 0  # the period is over: its credits would have expired with it
    expires_at = None if rollover or period_end is None else period_end
    what = "plan credits" if level == 0 else f"upgrade: the difference to {plan}"
    add_grant(
        conn,
        user_id=user_id,
        source="plan",
        amount=target - level,
        actor=actor,
        now=now,
        expires_at=expires_at,
        period_key=key,
        description=f"{plan} {what} for period until {iso(period_end) or 'open'}",
        reference=subscription_id,
    )
    return target - level
