"""The support view: everything about one user's credits and plan on one screen."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Connection, Engine

from creditctl.accounts.plans import get_plan
from creditctl.billing.subscription_views import account_subscription
from creditctl.clock import iso, utcnow
from creditctl.db.engine import read
from creditctl.db.tables import grants, users
from creditctl.ledger.balances import balance
from creditctl.ledger.history import entries_of
from creditctl.ledger.holds import holds_of
from creditctl.ledger.lookup import user_state
from creditctl.ledger.policy import Policy
from creditctl.ledger.results import Balance

USAGE_TYPES = {"usage", "capture"}


def account_view(
    engine: Engine, user: str, *, policy: Policy, now: datetime | None = None
) -> dict[str, Any]:
    """Everything about one user's credits and plan, read in one consistent snapshot.

    Expired grants and holds are swept first, in a write transaction of its own, so the
    snapshot shows current balances; every figure after that comes from the one snapshot, so
    plan + bonus credits equal the balance and `held` equals the listed holds.
    """
    now = now or utcnow()
    user_id = balance(engine, user, now=now).user_id
    with read(engine) as conn:
        return _view(conn, user_id, policy, now)


def _view(conn: Connection, user_id: str, policy: Policy, now: datetime) -> dict[str, Any]:
    state = user_state(conn, user_id)
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).one()
    plan = get_plan(conn, row.plan)
    by_source: dict[str, int] = dict(
        conn.execute(
            sa.select(grants.c.source, func.sum(grants.c.remaining))
            .where(grants.c.user_id == user_id, grants.c.remaining > 0)
            .group_by(grants.c.source)
        ).all()
    )
    current = Balance(
        user_id=user_id,
        email=state.email,
        plan=state.plan,
        unlimited=state.credits is None,
        available=state.balance,
        held=state.held,
    )
    recent = [e for e in entries_of(conn, user_id, limit=50) if e["type"] in USAGE_TYPES][-10:]
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
        "subscription": account_subscription(
            conn, user_id, plan.amount, row.period_start, row.period_end
        ),
        "balance": {
            "plan_credits": plan_credits,
            "bonus_credits": sum(int(v or 0) for v in by_source.values()),
            "held": current.held,
            "available": current.available,
            "unlimited": current.unlimited,
        },
        "holds": holds_of(conn, user_id, now=now),
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
