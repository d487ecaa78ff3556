"""Subscriptions as recorded here, read for the operator's and the support views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from creditctl.billing.subscription_status import ENDED
from creditctl.clock import iso
from creditctl.db.tables import subscriptions


def subscription_dict(row: Row) -> dict[str, Any]:
    return {
        "subscription_id": row.stripe_subscription_id,
        "user_id": row.user_id,
        "customer_id": row.stripe_customer_id,
        "plan": row.plan,
        "status": row.status,
        "price_id": row.stripe_price_id,
        "current_period_start": iso(row.current_period_start),
        "current_period_end": iso(row.current_period_end),
        "cancel_at_period_end": row.cancel_at_period_end,
        "last_event_created": iso(row.last_event_created),
        "updated_at": iso(row.updated_at),
    }


def local_subscriptions(conn: Connection, user_id: str) -> list[dict[str, Any]]:
    """The user's subscriptions as recorded here, the current one first."""
    rows = conn.execute(
        sa.select(subscriptions)
        .where(subscriptions.c.user_id == user_id)
        .order_by(
            subscriptions.c.status.in_(ENDED),
            subscriptions.c.updated_at.desc(),
            subscriptions.c.id.desc(),
        )
    ).all()
    return [subscription_dict(row) for row in rows]


def account_subscription(
    conn: Connection,
    user_id: str,
    plan_amount: int,
    period_start: datetime | None,
    period_end: datetime | None,
) -> dict[str, Any]:
    """The subscription part of the support view: status and renewal date."""
    current = next(iter(local_subscriptions(conn, user_id)), None)
    if current is None or (current["status"] in ENDED and plan_amount == 0):
        status = "none (free plan, renewed locally)" if plan_amount == 0 else "none"
        return {"status": status, "period_start": iso(period_start), "renews_at": iso(period_end)}
    ending = current["cancel_at_period_end"] or current["status"] in ENDED
    return {
        "status": current["status"]
        + (" (cancels at period end)" if current["cancel_at_period_end"] else ""),
        "subscription_id": current["subscription_id"],
        "plan": current["plan"],
        "period_start": current["current_period_start"],
        "renews_at": None if ending else current["current_period_end"],
        "ends_at": current["current_period_end"] if ending else None,
        "cancel_at_period_end": current["cancel_at_period_end"],
    }
