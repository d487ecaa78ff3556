"""Local subscription state: recording what creditctl learns of a Stripe subscription.

`apply_subscription_change` is the one function every path calls when it learns of a
subscription's state: the CLI after `subscriptions change|cancel|resume`, and the webhook
handlers for `customer.subscription.*` and `invoice.*`. It records the state (newest event
wins), applies the period's credit effect once (billing.period_credits), moves the user's
plan (billing.plan_moves) and keeps the payment state (`users.past_due_since`) in the order
of Stripe's payment news.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from creditctl.billing.payloads import from_stripe
from creditctl.billing.period_credits import top_up
from creditctl.billing.plan_moves import move_user
from creditctl.billing.subscription_status import CREDITED, ENDED, OVERDUE, STATUSES
from creditctl.db.tables import plans, subscriptions, users
from creditctl.errors import InvalidInput, UnknownUser
from creditctl.ledger.statements import LOCK_USER


@dataclass(frozen=True)
class Applied:
    """What one call of apply_subscription_change did."""

    subscription_id: str
    state_recorded: bool  # False: an older change than the one already recorded
    granted: int  # plan credits granted now
    user_plan: str  # the plan the user is on afterwards
    payment_recorded: bool = True  # False: older payment news than the one already applied


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
    payment_created: datetime | None = None,
) -> Applied:
    """Record a subscription's state and apply its credit effect, once, in the caller's transaction.

    `stripe_created` is Stripe's `created` of the change (an event's, or the time a fresh
    API answer was read); older changes than the recorded one leave the state alone.
    `paid=True` says the period's invoice is paid (invoice.paid); `payment_created` is when
    Stripe reported that payment (default `stripe_created`), so older payment news never
    clears or starts the grace period over newer. A payment failure newer than the change
    keeps the subscription past_due (`_status_to_record`); an end stops the grace clock
    whenever its news comes. When the subscription has ended, the user moves to
    `ended_plan` if given.
    """
    if status not in STATUSES:
        raise InvalidInput(f"subscription status {status!r} is not one of {', '.join(STATUSES)}")
    if conn.execute(LOCK_USER, {"uid": user_id}).first() is None:
        raise UnknownUser(f"unknown user {user_id!r}")
    previous = conn.execute(
        sa.select(subscriptions).where(subscriptions.c.stripe_subscription_id == subscription_id)
    ).first()
    fresh = previous is None or _newer(stripe_created, previous.last_event_created)
    payment_at = payment_created or stripe_created
    payment_fresh = (fresh or paid) and (
        previous is None
        or _newer(payment_at, previous.last_payment_created or previous.last_event_created)
    )
    recorded_status = _status_to_record(conn, previous, user_id, status, stripe_created)
    granted = 0
    if status in CREDITED and plan is not None and period_start is not None:
        granted = top_up(
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
    state = {
        "user_id": user_id,
        "subscription_id": subscription_id,
        "plan": plan,
        "period_start": period_start,
        "period_end": period_end,
        "status": recorded_status,
        "stripe_created": stripe_created,
        "now": now,
        "customer_id": customer_id,
        "price_id": price_id,
        "cancel_at_period_end": cancel_at_period_end,
    }
    if fresh:
        _record(conn, previous, **state)
        move_user(
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
    if fresh and status in ENDED and not payment_fresh:
        # Ended: nothing is overdue any more, however late the news of the end came.
        _note_payment(conn, user_id, overdue=False, since=payment_at)
    if payment_fresh:
        _note_payment(conn, user_id, overdue=status in OVERDUE and not paid, since=payment_at)
        conn.execute(
            subscriptions.update()
            .where(subscriptions.c.stripe_subscription_id == subscription_id)
            .values(last_payment_created=payment_at)
        )
    user_plan = conn.execute(sa.select(users.c.plan).where(users.c.id == user_id)).scalar_one()
    return Applied(subscription_id, fresh, granted, user_plan, payment_fresh)


def _newer(moment: datetime, than: datetime | None) -> bool:
    return than is None or moment >= than


def _status_to_record(
    conn: Connection, previous: Row | None, user_id: str, status: str, created: datetime
) -> str:
    """The change's status, unless a payment failure newer than the change still stands.

    A failure recorded before the subscription's own events (its invoice came first) leaves
    the state provisional, so an older subscription event still records its plan, period and
    flags; the subscription stays past_due all the same, as it would had the events come in
    order, unless the change ends it or a later payment cleared the failure.
    """
    if previous is None or status in ENDED or previous.status not in OVERDUE:
        return status
    newest = previous.last_payment_created
    if newest is None or newest <= created:
        return status
    since = conn.execute(sa.select(users.c.past_due_since).where(users.c.id == user_id))
    return previous.status if since.scalar() is not None else status


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
