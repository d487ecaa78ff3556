"""Subscription changes an operator asks for: show, change plan, cancel, resume."""

from __future__ import annotations

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


# --- subscriptions ------------------------------------------------------------------------------


def show_subscriptions(engine: Engine, gateway: Gateway | None, user: str) -> dict[str, Any]:
    """The user's subscriptions as recorded here and, with a gateway, as Stripe has them."""
    with read(engine) as conn:
        row = user_row(conn, user)
        local = local_subscriptions(conn, row.id)
    shown: dict[str, Any] = {
        "user_id": row.id,
        "customer_id": row.stripe_customer_id,
        "local": local,
    }
    if gateway is not None:
        customer = known_customer(engine, gateway, row)
        remote = gateway.subscriptions_of(customer) if customer else []
        with read(engine) as conn:
            shown["remote"] = [
                _remote_dict(conn, sub)
                for sub in sorted(remote, key=lambda s: s.get("created") or 0, reverse=True)
            ]
        shown["customer_id"] = customer
    return shown


def _remote_dict(conn: Connection, subscription: dict[str, Any]) -> dict[str, Any]:
    fields = from_stripe(subscription)
    return {
        "subscription_id": fields["subscription_id"],
        "customer_id": fields["customer_id"],
        "plan": plan_for_price(
            conn, fields["price_id"], fields["lookup_key"], fields["price_plan"]
        ),
        "status": fields["status"],
        "price_id": fields["price_id"],
        "current_period_start": iso(fields["period_start"]),
        "current_period_end": iso(fields["period_end"]),
        "cancel_at_period_end": fields["cancel_at_period_end"],
        "created": iso(fields["created"]),
    }


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
) -> dict[str, Any]:
    """Record what Stripe answered, apply its credit effect, and audit the operator's action."""
    now = now or utcnow()

    def operation(conn: Connection) -> dict[str, Any]:
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
        current = conn.execute(
            sa.select(subscriptions).where(
                subscriptions.c.stripe_subscription_id == applied.subscription_id
            )
        ).one()
        return {
            **_remote_dict(conn, subscription),
            "user_id": row.id,
            "granted": applied.granted,
            "user_plan": applied.user_plan,
            "local_status": current.status,
        }

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
) -> dict[str, Any]:
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
) -> dict[str, Any]:
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
) -> dict[str, Any]:
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
