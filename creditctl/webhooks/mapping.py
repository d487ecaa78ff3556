"""Mapping Stripe objects to local users and plans.

A price or legacy plan maps to a local plan by the price id `plans sync` recorded, else its
lookup key, else `metadata.plan` on the price/plan or on its product. A customer or
subscription maps to a user by a stored link, else `client_reference_id` (checkout), else
`metadata.creditctl_user_id` on the subscription, the invoice's subscription details, or the
customer. Nothing is guessed from an email: an event that maps to nothing is ignored with the
reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from creditctl.billing import payloads
from creditctl.billing.subscriptions import (
    plan_for_price,
)
from creditctl.db.tables import subscriptions, users
from creditctl.webhooks.context import EventContext

# --- mapping -----------------------------------------------------------------------------------


def _existing_user(conn: Connection, user_id: Any) -> str | None:
    if not isinstance(user_id, str) or not user_id:
        return None
    return conn.execute(sa.select(users.c.id).where(users.c.id == user_id)).scalar()


def linked_user(
    conn: Connection, subscription_id: str | None, customer_id: str | None
) -> str | None:
    if subscription_id:
        found = conn.execute(
            sa.select(subscriptions.c.user_id).where(
                subscriptions.c.stripe_subscription_id == subscription_id
            )
        ).scalar()
        if found:
            return found
    if customer_id:
        return conn.execute(
            sa.select(users.c.id).where(users.c.stripe_customer_id == customer_id)
        ).scalar()
    return None


def _customer_metadata_user(ctx: EventContext, customer: Any) -> str | None:
    """`metadata.creditctl_user_id` of the customer, read from Stripe when not expanded."""
    if isinstance(customer, dict):
        return payloads.metadata_user(customer)
    if not customer or ctx.stripe is None:
        return None
    found = ctx.stripe.retrieve(lambda v1: v1.customers.retrieve(customer))
    return payloads.metadata_user(found) if found and not found.get("deleted") else None


def map_user(
    ctx: EventContext,
    *,
    subscription_id: str | None,
    customer: Any,
    client_reference_id: str | None = None,
    metadata: Iterable[dict[str, Any] | None] = (),
) -> str | None:
    """The local user an event is about, by the mapping rules above."""
    customer_id = payloads.obj_id(customer)
    found = linked_user(ctx.conn, subscription_id, customer_id)
    if found:
        return found
    candidates = [client_reference_id]
    candidates += [(m or {}).get("creditctl_user_id") for m in metadata]
    for candidate in candidates:
        found = _existing_user(ctx.conn, candidate)
        if found:
            return found
    return _existing_user(ctx.conn, _customer_metadata_user(ctx, customer))


def local_plan(conn: Connection, price: Any) -> str | None:
    """The plan a price maps to by what the payload and the database say, without Stripe."""
    price_id, lookup_key, price_plan, product = payloads.price_fields(price)
    found = plan_for_price(conn, price_id, lookup_key, price_plan)
    if found or not isinstance(product, dict):
        return found
    return plan_for_price(conn, None, None, (product.get("metadata") or {}).get("plan"))


def map_plan(ctx: EventContext, price: Any) -> str | None:
    """The local plan of a price or legacy plan, by the mapping rules above."""
    found = local_plan(ctx.conn, price)
    if found or ctx.stripe is None:
        return found
    price_id, _, _, product = payloads.price_fields(price)
    if price_id and not isinstance(price, dict):
        fetched = ctx.stripe.retrieve(lambda v1: v1.prices.retrieve(price_id))
        if fetched:
            _, lookup_key, price_plan, product = payloads.price_fields(fetched)
            found = plan_for_price(ctx.conn, None, lookup_key, price_plan)
            if found:
                return found
    return plan_for_price(ctx.conn, None, None, _product_plan(ctx, product))


def _product_plan(ctx: EventContext, product: Any) -> str | None:
    if isinstance(product, dict):
        return (product.get("metadata") or {}).get("plan")
    if not product or ctx.stripe is None:
        return None
    found = ctx.stripe.product(product)
    return (found.get("metadata") or {}).get("plan") if found else None


def link_customer(
    conn: Connection, user_id: str, customer_id: str | None, *, replace: bool = False
) -> str | None:
    """Record the user's Stripe customer; returns why not when another user holds it."""
    if not customer_id:
        return None
    holder = conn.execute(
        sa.select(users.c.id).where(users.c.stripe_customer_id == customer_id)
    ).scalar()
    if holder is not None:
        return None if holder == user_id else f"customer {customer_id} is linked to {holder}"
    current = conn.execute(
        sa.select(users.c.stripe_customer_id).where(users.c.id == user_id)
    ).scalar()
    if current is None or replace:
        conn.execute(
            users.update().where(users.c.id == user_id).values(stripe_customer_id=customer_id)
        )
    return None


def recorded_subscription(conn: Connection, subscription_id: str) -> Row | None:
    return conn.execute(
        sa.select(subscriptions).where(subscriptions.c.stripe_subscription_id == subscription_id)
    ).first()


def fresh(
    ctx: EventContext, retrieve: Callable[[Any], dict[str, Any] | None], payload: dict[str, Any]
) -> tuple[dict[str, Any], datetime]:
    """With webhooks.fetch_latest, the object as Stripe has it now (read now), else the payload."""
    if ctx.config.fetch_latest and ctx.stripe is not None:
        latest = retrieve(ctx.stripe)
        if latest:
            return latest, ctx.now
    return payload, ctx.created
