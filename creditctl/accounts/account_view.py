"""The support view: everything about one user's credits and plan on one screen."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Engine

from creditctl.accounts.plans import get_plan
from creditctl.clock import iso, utcnow
from creditctl.db.engine import read
from creditctl.db.tables import grants, users
from creditctl.ledger.balances import balance
from creditctl.ledger.history import history
from creditctl.ledger.holds import open_holds
from creditctl.ledger.policy import Policy

USAGE_TYPES = {"usage", "capture"}


def _subscription(engine: Engine, row: sa.Row, plan_amount: int) -> dict[str, Any]:
    """Status and renewal date of the user's subscription, as recorded locally."""
    from creditctl.billing.subscription_views import account_subscription

    with read(engine) as conn:
        return account_subscription(conn, row.id, plan_amount, row.period_start, row.period_end)


def account_view(
    engine: Engine, user: str, *, policy: Policy, now: datetime | None = None
) -> dict[str, Any]:
    now = now or utcnow()
    current = balance(engine, user, now=now)
    with read(engine) as conn:
        row = conn.execute(sa.select(users).where(users.c.id == current.user_id)).one()
        plan = get_plan(conn, row.plan)
        by_source = dict(
            conn.execute(
                sa.select(grants.c.source, func.sum(grants.c.remaining))
                .where(grants.c.user_id == row.id, grants.c.remaining > 0)
                .group_by(grants.c.source)
            ).all()
        )
    recent = [e for e in history(engine, row.id, limit=50) if e["type"] in USAGE_TYPES][-10:]
    plan_credits = int(by_source.pop("plan", 0) or 0)
    return {
        "user": {
            "id": row.id,
            "email": row.email,
            "name": row.name,
            "stripe_customer_id": row.stripe_customer_id,
        },
        "plan": {
            "name": plan.name,
            "display_name": plan.display_name,
            "credits_per_period": "unlimited" if plan.credits is None else plan.credits,
            "features": list(plan.features),
        },
        "subscription": _subscription(engine, row, plan.amount),
        "balance": {
            "plan_credits": plan_credits,
            "bonus_credits": int(sum(v or 0 for v in by_source.values())),
            "held": current.held,
            "available": current.available,
            "unlimited": current.unlimited,
        },
        "holds": open_holds(engine, user=row.id, now=now),
        "recent_usage": recent,
        "warnings": current.warnings(policy) + _payment_warnings(row, policy, now),
    }


def _payment_warnings(row: Any, policy: Policy, now: datetime) -> list[str]:
    if row.past_due_since is None:
        return []
    stops = row.past_due_since + timedelta(days=policy.past_due_grace_days)
    state = "usage is suspended" if stops <= now else f"usage stops at {iso(stops)}"
    return [
        f"payment failed since {iso(row.past_due_since)}; {state} unless the invoice is "
        f"paid (`creditctl stripe portal {row.id}`)"
    ]
