"""Local subscription state and the credit effects of a subscription change.

`apply_subscription_change` is the one function every path calls when it learns of a
subscription's state: the CLI after `subscriptions change|cancel|resume`, and the webhook
handlers for `customer.subscription.*` and `invoice.paid`. Its credit effect is keyed by
(subscription, period, plan) through the grants' unique `period_key`, so whichever path
sees a change first applies it, exactly once:

- a period's first plan credits come with its paid invoice (`paid=True`);
- an upgrade inside a credited period tops the period up to the new plan's credits at once
  (the difference), expiring at the period's end;
- a downgrade takes effect at the next period: no clawback, and the user keeps the
  higher plan until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Connection, Row

from creditctl.billing.payloads import obj_id, price_fields, subscription_item_price, when
from creditctl.clock import iso
from creditctl.db.models import SUBSCRIPTION_STATUSES
from creditctl.db.tables import grants, plans, subscriptions, users
from creditctl.errors import InvalidInput, UnknownUser
from creditctl.ledger.postings import add_grant
from creditctl.ledger.statements import LOCK_USER

CREDITED = frozenset({"active", "trialing"})
OVERDUE = frozenset({"past_due", "unpaid"})
ENDED = frozenset({"canceled", "incomplete_expired"})


@dataclass(frozen=True)
class Applied:
    """What one call of apply_subscription_change did."""

    subscription_id: str
    state_recorded: bool  # False: an older change than the one already recorded
    granted: int  # plan credits granted now
    user_plan: str  # the plan the user is on afterwards


def apply_subscription_change(
    conn: Connection,
    *,
    user_id: str,
    subscription_id: str,
    plan: str | None,
    period_start: datetime | None,
    period_end: datetime | None,
    status: str,
    stripe_created: datetime,
    actor: str,
    now: datetime,
    customer_id: str | None = None,
    price_id: str | None = None,
    cancel_at_period_end: bool = False,
    paid: bool = False,
    ended_plan: str | None = None,
) -> Applied:
    """Record a subscription's state and apply its credit effect, once, in the caller's transaction.

    `stripe_created` is Stripe's `created` of the change (an event's, or the time a fresh
    API answer was read); older changes than the recorded one leave the state alone.
    `paid=True` says the period's invoice is paid (invoice.paid). When the subscription has
    ended, the user moves to `ended_plan` if given.
    """
    if status not in SUBSCRIPTION_STATUSES:
        raise InvalidInput(
            f"subscription status {status!r} is not one of {', '.join(SUBSCRIPTION_STATUSES)}"
        )
    if conn.execute(LOCK_USER, {"uid": user_id}).first() is None:
        raise UnknownUser(f"unknown user {user_id!r}")
    previous = conn.execute(
        sa.select(subscriptions).where(subscriptions.c.stripe_subscription_id == subscription_id)
    ).first()
    fresh = (
        previous is None
        or previous.last_event_created is None
        or stripe_created >= previous.last_event_created
    )
    granted = 0
    if status in CREDITED and plan is not None and period_start is not None:
        granted = _top_up(
            conn,
            user_id,
            subscription_id,
            plan,
            period_start,
            period_end,
            paid=paid,
            recorded=previous,
            actor=actor,
            now=now,
        )
    if fresh:
        _record(
            conn,
            previous,
            user_id=user_id,
            subscription_id=subscription_id,
            plan=plan,
            period_start=period_start,
            period_end=period_end,
            status=status,
            stripe_created=stripe_created,
            now=now,
            customer_id=customer_id,
            price_id=price_id,
            cancel_at_period_end=cancel_at_period_end,
        )
        _move_user(
            conn,
            user_id,
            previous,
            plan=plan,
            status=status,
            period_start=period_start,
            period_end=period_end,
            ended_plan=ended_plan,
            actor=actor,
            now=now,
        )
    if fresh or paid:
        _note_payment(conn, user_id, overdue=status in OVERDUE and not paid, since=stripe_created)
    user_plan = conn.execute(sa.select(users.c.plan).where(users.c.id == user_id)).scalar_one()
    return Applied(subscription_id, fresh, granted, user_plan)


def _note_payment(conn: Connection, user_id: str, *, overdue: bool, since: datetime) -> None:
    """Start the usage grace clock at the first failed payment; stop it once paid up."""
    if overdue:
        conn.execute(
            users.update()
            .where(users.c.id == user_id, users.c.past_due_since.is_(None))
            .values(past_due_since=since)
        )
    else:
        conn.execute(
            users.update()
            .where(users.c.id == user_id, users.c.past_due_since.is_not(None))
            .values(past_due_since=None)
        )


def period_prefix(subscription_id: str, period_start: datetime) -> str:
    """The period_key prefix of a subscription period's plan grants."""
    return f"{subscription_id}:{int(period_start.timestamp())}:"


def _credits(conn: Connection, plan: str | None) -> int | None:
    """A plan's credits per period; None for unlimited or an unknown plan."""
    if plan is None:
        return None
    return conn.execute(sa.select(plans.c.credits).where(plans.c.name == plan)).scalar()


def _top_up(
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
    target = _credits(conn, plan) or 0
    if paid and recorded is not None and recorded.current_period_start == period_start:
        # An upgrade recorded before the invoice was: the period is owed the higher plan.
        target = max(target, _credits(conn, recorded.plan) or 0)
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


def _record(conn: Connection, previous: Row | None, **state: Any) -> None:
    values = {
        "user_id": state["user_id"],
        "plan": state["plan"],
        "status": state["status"],
        "current_period_start": state["period_start"],
        "current_period_end": state["period_end"],
        "cancel_at_period_end": state["cancel_at_period_end"],
        "last_event_created": state["stripe_created"],
        "updated_at": state["now"],
    }
    if state["price_id"] is not None:
        values["stripe_price_id"] = state["price_id"]
    if previous is None:
        conn.execute(
            subscriptions.insert().values(
                stripe_subscription_id=state["subscription_id"],
                stripe_customer_id=state["customer_id"] or "",
                created_at=state["now"],
                **{"stripe_price_id": None, **values},
            )
        )
        return
    if state["customer_id"]:
        values["stripe_customer_id"] = state["customer_id"]
    conn.execute(subscriptions.update().where(subscriptions.c.id == previous.id).values(**values))


def _rank(conn: Connection, plan: str) -> tuple[bool, int, int]:
    row = conn.execute(
        sa.select(plans.c.credits, plans.c.amount).where(plans.c.name == plan)
    ).first()
    if row is None:
        return (False, 0, 0)
    return (row.credits is None, row.credits or 0, row.amount)


def _move_user(
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


# --- reading ----------------------------------------------------------------------------------


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


# --- reading Stripe's objects -------------------------------------------------------------------


def from_stripe(subscription: dict[str, Any]) -> dict[str, Any]:
    """The fields creditctl keeps from a Stripe subscription, for old and current API shapes.

    Before 2025-03-31 the period sat on the subscription; since then it is on its items.
    A legacy `plan` on the item stands in for its price.
    """
    item = ((subscription.get("items") or {}).get("data") or [{}])[0]
    price_id, lookup_key, price_plan, _ = price_fields(subscription_item_price(subscription))
    return {
        "subscription_id": subscription["id"],
        "customer_id": obj_id(subscription.get("customer")),
        "status": subscription.get("status"),
        "item_id": item.get("id"),
        "price_id": price_id,
        "lookup_key": lookup_key,
        "price_plan": price_plan,
        "period_start": when(
            item.get("current_period_start") or subscription.get("current_period_start")
        ),
        "period_end": when(
            item.get("current_period_end") or subscription.get("current_period_end")
        ),
        "cancel_at_period_end": bool(subscription.get("cancel_at_period_end")),
        "created": when(subscription.get("created")),
        "user_id_metadata": (subscription.get("metadata") or {}).get("creditctl_user_id"),
    }


def plan_for_price(
    conn: Connection,
    price_id: str | None,
    lookup_key: str | None = None,
    price_plan: str | None = None,
) -> str | None:
    """The local plan a Stripe price stands for: by price id, then lookup key, then metadata."""
    for column, value in (
        (plans.c.stripe_price_id, price_id),
        (plans.c.lookup_key, lookup_key),
        (plans.c.name, price_plan),
    ):
        if value:
            name = conn.execute(sa.select(plans.c.name).where(column == value)).scalar()
            if name is not None:
                return name
    return None


def apply_stripe_subscription(
    conn: Connection,
    subscription: dict[str, Any],
    *,
    user_id: str,
    actor: str,
    now: datetime,
    stripe_created: datetime | None = None,
    paid: bool = False,
    ended_plan: str | None = None,
) -> Applied:
    """apply_subscription_change for a Stripe subscription object as the API returned it."""
    fields = from_stripe(subscription)
    plan = plan_for_price(conn, fields["price_id"], fields["lookup_key"], fields["price_plan"])
    return apply_subscription_change(
        conn,
        user_id=user_id,
        subscription_id=fields["subscription_id"],
        plan=plan,
        period_start=fields["period_start"],
        period_end=fields["period_end"],
        status=fields["status"],
        stripe_created=stripe_created or now,
        actor=actor,
        now=now,
        customer_id=fields["customer_id"],
        price_id=fields["price_id"],
        cancel_at_period_end=fields["cancel_at_period_end"],
        paid=paid,
        ended_plan=ended_plan,
    )
