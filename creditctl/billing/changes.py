"""Subscription changes an operator asks for: show, change plan, cancel, resume."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.billing.customers import USER_METADATA, known_customer, user_row
from creditctl.billing.gateway import Gateway
from creditctl.billing.links import sold_price
from creditctl.billing.payloads import from_stripe
from creditctl.billing.request_keys import stripe_write
from creditctl.billing.subscription_status import ENDED
from creditctl.billing.subscription_views import local_subscriptions
from creditctl.billing.subscriptions import apply_stripe_subscription, plan_for_price
from creditctl.clock import iso, utcnow
from creditctl.db.engine import read
from creditctl.db.tables import subscriptions
from creditctl.errors import Conflict, InvalidInput, NotFound
from creditctl.ledger.audit import record
from creditctl.ledger.transactions import run_write

PRORATIONS = ("create_prorations", "always_invoice", "none")


@dataclass(frozen=True)
class RemoteSubscription:
    """A subscription as Stripe has it, with the local plan its price stands for."""

    subscription_id: str
    customer_id: str | None
    plan: str | None  # None: the price maps to no local plan
    status: str | None
    price_id: str | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    created: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "customer_id": self.customer_id,
            "plan": self.plan,
            "status": self.status,
            "price_id": self.price_id,
            "current_period_start": iso(self.current_period_start),
            "current_period_end": iso(self.current_period_end),
            "cancel_at_period_end": self.cancel_at_period_end,
            "created": iso(self.created),
        }


@dataclass(frozen=True)
class UserSubscriptions:
    """A user's subscriptions as recorded here and, when Stripe was asked, as Stripe has them."""

    user_id: str
    customer_id: str | None
    local: tuple[dict[str, Any], ...]  # as billing.subscription_views reads them
    remote: tuple[RemoteSubscription, ...] | None = None  # None: Stripe was not asked

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "user_id": self.user_id,
            "customer_id": self.customer_id,
            "local": list(self.local),
        }
        if self.remote is not None:
            shown["remote"] = [sub.as_dict() for sub in self.remote]
        return shown


@dataclass(frozen=True)
class SubscriptionChange:
    """An operator's change, cancel or resume: Stripe's answer and what it did here."""

    subscription: RemoteSubscription
    user_id: str
    granted: int  # plan credits granted now
    user_plan: str  # the plan the user is on afterwards
    local_status: str  # the subscription's status as recorded here

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.subscription.as_dict(),
            "user_id": self.user_id,
            "granted": self.granted,
            "user_plan": self.user_plan,
            "local_status": self.local_status,
        }


# --- subscriptions ------------------------------------------------------------------------------


def show_subscriptions(engine: Engine, gateway: Gateway | None, user: str) -> UserSubscriptions:
    """The user's subscriptions as recorded here and, with a gateway, as Stripe has them."""
    with read(engine) as conn:
        row = user_row(conn, user)
        local = tuple(local_subscriptions(conn, row.id))
    if gateway is None:
        return UserSubscriptions(row.id, row.stripe_customer_id, local)
    customer = known_customer(engine, gateway, row)
    remote = gateway.subscriptions_of(customer) if customer else []
    with read(engine) as conn:
        shown = tuple(
            _remote(conn, sub)
            for sub in sorted(remote, key=lambda s: s.get("created") or 0, reverse=True)
        )
    return UserSubscriptions(row.id, customer, local, shown)


def _remote(conn: Connection, subscription: dict[str, Any]) -> RemoteSubscription:
    fields = from_stripe(subscription)
    return RemoteSubscription(
        subscription_id=fields["subscription_id"],
        customer_id=fields["customer_id"],
        plan=plan_for_price(conn, fields["price_id"], fields["lookup_key"], fields["price_plan"]),
        status=fields["status"],
        price_id=fields["price_id"],
        current_period_start=fields["period_start"],
        current_period_end=fields["period_end"],
        cancel_at_period_end=fields["cancel_at_period_end"],
        created=fields["created"],
    )


def current_subscription(engine: Engine, gateway: Gateway, user: str) -> tuple[Row, dict[str, Any]]:
    """The user's live subscription, fresh from Stripe: the recorded one, else the customer's."""
    with read(engine) as conn:
        row = user_row(conn, user)
        recorded = [
            s["subscription_id"]
            for s in local_subscriptions(conn, row.id)
            if s["status"] not in ENDED
        ]
    for subscription_id in recorded:
        found = gateway.subscription(subscription_id)
        if found is not None and found.get("status") not in ENDED:
            return row, found
    customer = known_customer(engine, gateway, row)
    live = [
        s
        for s in (gateway.subscriptions_of(customer) if customer else [])
        if s.get("status") not in ENDED
    ]
    if not live:
        raise NotFound(
            f"user {row.id} has no live Stripe subscription; start one with "
            f"`creditctl stripe checkout {row.id} --plan PLAN`"
        )
    return row, max(live, key=lambda s: s.get("created") or 0)


def _apply(
    engine: Engine,
    row: Row,
    subscription: dict[str, Any],
    *,
    actor: str,
    action: str,
    reason: str,
    ended_plan: str | None = None,
    now: datetime | None = None,
) -> SubscriptionChange:
    """Record what Stripe answered, apply its credit effect, and audit the operator's action."""
    now = now or utcnow()

    def operation(conn: Connection) -> SubscriptionChange:
        applied = apply_stripe_subscription(
            conn, subscription, user_id=row.id, actor=actor, now=now, ended_plan=ended_plan
        )
        record(
            conn,
            operator=actor,
            action=action,
            user_id=row.id,
            reason=reason,
            now=now,
            details={
                "subscription_id": applied.subscription_id,
                "granted": applied.granted,
                "plan": applied.user_plan,
            },
        )
        local_status = conn.execute(
            sa.select(subscriptions.c.status).where(
                subscriptions.c.stripe_subscription_id == applied.subscription_id
            )
        ).scalar_one()
        return SubscriptionChange(
            _remote(conn, subscription), row.id, applied.granted, applied.user_plan, local_status
        )

    return run_write(engine, operation)


def change_subscription(
    engine: Engine,
    gateway: Gateway,
    user: str,
    plan: str,
    *,
    proration: str,
    actor: str,
    now: datetime | None = None,
) -> SubscriptionChange:
    """Move the user's subscription to `plan`, with Stripe's proration behaviour."""
    if proration not in PRORATIONS:
        raise InvalidInput(f"proration {proration!r} is not one of {', '.join(PRORATIONS)}")
    row, subscription = current_subscription(engine, gateway, user)
    with read(engine) as conn:
        price = sold_price(conn, plan)
    fields = from_stripe(subscription)
    if fields["price_id"] == price:
        raise Conflict(
            f"subscription {fields['subscription_id']} of {row.id} is already on plan {plan}"
        )
    params = {
        "items": [{"id": fields["item_id"], "price": price}],
        "proration_behavior": proration,
        "metadata": {USER_METADATA: row.id, "plan": plan},
    }
    updated = stripe_write(
        engine,
        "subscription.change",
        fields["subscription_id"],
        params,
        lambda p, key: gateway.update_subscription(fields["subscription_id"], p, key),
    )
    return _apply(
        engine,
        row,
        updated,
        actor=actor,
        action="subscription.change",
        reason=f"change to {plan} ({proration})",
        now=now,
    )


def cancel_subscription(
    engine: Engine, gateway: Gateway, user: str, *, immediately: bool, actor: str, ended_plan: str
) -> SubscriptionChange:
    """Cancel at period end (the default), or at once; the user then falls to `ended_plan`."""
    row, subscription = current_subscription(engine, gateway, user)
    subscription_id = subscription["id"]
    if immediately:
        subscription = stripe_write(
            engine,
            "subscription.cancel",
            subscription_id,
            {},
            lambda _p, key: gateway.cancel_subscription(subscription_id, key),
        )
    elif not subscription.get("cancel_at_period_end"):
        subscription = _set_cancel_at_period_end(engine, gateway, subscription_id, True)
    return _apply(
        engine,
        row,
        subscription,
        actor=actor,
        action="subscription.cancel",
        reason="cancel now" if immediately else "cancel at period end",
        ended_plan=ended_plan,
    )


def resume_subscription(
    engine: Engine, gateway: Gateway, user: str, *, actor: str
) -> SubscriptionChange:
    """Undo a pending cancel at period end; the subscription renews again."""
    row, subscription = current_subscription(engine, gateway, user)
    if subscription.get("status") == "canceled" or not subscription.get("cancel_at_period_end"):
        raise Conflict(
            f"subscription {subscription['id']} ({subscription.get('status')}) has "
            "no pending cancel, so there is nothing to resume; a canceled "
            "subscription is restarted with `creditctl stripe checkout`"
        )
    subscription = _set_cancel_at_period_end(engine, gateway, subscription["id"], False)
    return _apply(
        engine,
        row,
        subscription,
        actor=actor,
        action="subscription.resume",
        reason="resume: undo the pending cancel",
    )


def _set_cancel_at_period_end(
    engine: Engine, gateway: Gateway, subscription_id: str, value: bool
) -> dict[str, Any]:
    return stripe_write(
        engine,
        "subscription.cancel_at_period_end",
        subscription_id,
        {"cancel_at_period_end": value},
        lambda p, key: gateway.update_subscription(subscription_id, p, key),
    )
