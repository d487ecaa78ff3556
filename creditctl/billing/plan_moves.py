"""Which plan a user is on as their subscriptions change: up at once, down at the next period."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from creditctl.billing.subscription_status import CREDITED, ENDED
from creditctl.db.tables import plans, subscriptions, users


def move_user(
    conn: Connection,
    user_id: str,
    previous: Row | None,
    *,
    plan: str | None,
    status: str,
    period_start: datetime | None,
    period_end: datetime | None,
    ended_plan: str | None,
    actor: str,
    now: datetime,
) -> None:
    """Put the user on the subscription's plan: at once for an upgrade or a new period."""
    current = conn.execute(sa.select(users.c.plan).where(users.c.id == user_id)).scalar_one()
    if status in ENDED:
        newly_ended = previous is None or previous.status not in ENDED
        if (
            ended_plan is not None
            and newly_ended
            and current != ended_plan
            and not _other_credited(conn, user_id, previous)
        ):
            _end_plan(conn, user_id, ended_plan, actor=actor, now=now)
        return
    if status not in CREDITED or plan is None or _credits_unknown(conn, plan):
        return
    new_period = (
        previous is None
        or previous.status in ENDED
        or previous.current_period_start != period_start
    )
    values: dict[str, Any] = {"period_start": period_start, "period_end": period_end}
    if new_period or _rank(conn, plan) > _rank(conn, current):
        values["plan"] = plan
    conn.execute(users.update().where(users.c.id == user_id).values(**values))


def _rank(conn: Connection, plan: str) -> tuple[bool, int, int]:
    row = conn.execute(
        sa.select(plans.c.credits, plans.c.amount).where(plans.c.name == plan)
    ).first()
    if row is None:
        return (False, 0, 0)
    return (row.credits is None, row.credits or 0, row.amount)


def _other_credited(conn: Connection, user_id: str, previous: Row | None) -> bool:
    """True when another subscription of the user still pays for their plan."""
    query = sa.select(subscriptions.c.id).where(
        subscriptions.c.user_id == user_id, subscriptions.c.status.in_(CREDITED)
    )
    if previous is not None:
        query = query.where(subscriptions.c.id != previous.id)
    return conn.execute(query).first() is not None


def _credits_unknown(conn: Connection, plan: str) -> bool:
    return conn.execute(sa.select(plans.c.name).where(plans.c.name == plan)).first() is None


def _end_plan(conn: Connection, user_id: str, plan: str, *, actor: str, now: datetime) -> None:
    """The subscription ended: back to `plan` (the default), whose local period starts now."""
    from creditctl.accounts.plans import get_plan
    from creditctl.accounts.users import start_local_period

    plan_row = get_plan(conn, plan)
    conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(plan=plan, period_start=None, period_end=None)
    )
    # A free period still running from before the subscription is resumed, not granted again.
    start_local_period(conn, user_id, plan_row, start=now, actor=actor)
