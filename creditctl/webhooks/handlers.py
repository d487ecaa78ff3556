"""One handler per Stripe event type, in HANDLERS; each runs in its caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from creditctl.billing import payloads
from creditctl.billing.payloads import from_stripe
from creditctl.billing.subscription_status import ENDED
from creditctl.billing.subscriptions import apply_subscription_change
from creditctl.db.tables import users
from creditctl.webhooks.context import EventContext, Result, ignored, processed, unmapped
from creditctl.webhooks.invoices import invoice_paid, invoice_payment_failed
from creditctl.webhooks.mapping import fresh, link_customer, linked_user, map_plan, map_user


def dispatch(ctx: EventContext) -> Result:
    handler = HANDLERS.get(ctx.event["type"])
    if handler is None:
        return ignored(f"no handler for event type {ctx.event['type']}")
    return handler(ctx)


# --- handlers ----------------------------------------------------------------------------------


def checkout_completed(ctx: EventContext) -> Result:
    """Link the user to the session's customer (and, with fetch_latest, its subscription)."""
    session = ctx.obj
    metadata_id = payloads.metadata_user(session)
    user_id = map_user(
        ctx,
        subscription_id=None,
        customer=None,
        client_reference_id=session.get("client_reference_id"),
        metadata=[{"creditctl_user_id": metadata_id}],
    )
    customer_id = payloads.obj_id(session.get("customer"))
    user_id = user_id or linked_user(ctx.conn, None, customer_id)
    if user_id is None:
        return unmapped(
            f"checkout session {session.get('id')} names no known user "
            "(client_reference_id, metadata.creditctl_user_id or customer link)",
            customer_id,
        )
    clash = link_customer(ctx.conn, user_id, customer_id, replace=True)
    if clash:
        return ignored(clash, user_id)
    subscription_id = payloads.obj_id(session.get("subscription"))
    if subscription_id and ctx.config.fetch_latest and ctx.stripe is not None:
        latest = ctx.stripe.subscription(subscription_id)
        if latest:
            return _apply_subscription(ctx, latest, ctx.now, user_id)
    return processed(f"linked {user_id} to customer {customer_id}", user_id)


def subscription_changed(ctx: EventContext) -> Result:
    """customer.subscription.created|updated|deleted: state, plan and credits, newest wins."""
    sid = ctx.obj["id"]
    subscription, created = fresh(ctx, lambda s: s.subscription(sid), ctx.obj)
    if ctx.event["type"].endswith(".deleted") and subscription.get("status") not in ENDED:
        subscription = {**subscription, "status": "canceled"}
    user_id = map_user(
        ctx,
        subscription_id=sid,
        customer=subscription.get("customer"),
        metadata=[subscription.get("metadata")],
    )
    if user_id is None:
        return unmapped(
            f"subscription {sid} maps to no user: no stored link and no "
            "metadata.creditctl_user_id on it or its customer",
            payloads.obj_id(subscription.get("customer")),
        )
    return _apply_subscription(ctx, subscription, created, user_id)


def _apply_subscription(
    ctx: EventContext, subscription: dict[str, Any], created: datetime, user_id: str
) -> Result:
    fields = from_stripe(subscription)
    plan = map_plan(ctx, payloads.subscription_item_price(subscription))
    if plan is None and fields["status"] not in ENDED:
        return ignored(
            f"price {fields['price_id']} of subscription {fields['subscription_id']} "
            "maps to no plan (price id, lookup key, metadata.plan)",
            user_id,
        )
    link_customer(ctx.conn, user_id, fields["customer_id"])
    applied = apply_subscription_change(
        ctx.conn,
        user_id=user_id,
        subscription_id=fields["subscription_id"],
        plan=plan,
        period_start=fields["period_start"],
        period_end=fields["period_end"],
        status=fields["status"],
        stripe_created=created,
        actor=ctx.event_id,
        now=ctx.now,
        customer_id=fields["customer_id"],
        price_id=fields["price_id"],
        cancel_at_period_end=fields["cancel_at_period_end"],
        ended_plan=ctx.config.default_plan,
    )
    what = "recorded" if applied.state_recorded else "older than the recorded state; kept"
    return processed(
        f"subscription {fields['subscription_id']} {fields['status']} {what}; "
        f"user on {applied.user_plan}, granted {applied.granted}",
        user_id,
    )


def customer_deleted(ctx: EventContext) -> Result:
    """Unlink the customer from its user (the subscriptions end with their own events)."""
    customer_id = ctx.obj["id"]
    user_id = ctx.conn.execute(
        users.update()
        .where(users.c.stripe_customer_id == customer_id)
        .values(stripe_customer_id=None)
        .returning(users.c.id)
    ).scalar()
    if user_id is None:
        return ignored(f"no user is linked to customer {customer_id}")
    return processed(f"unlinked customer {customer_id} from {user_id}", user_id)


HANDLERS: dict[str, Callable[[EventContext], Result]] = {
    "checkout.session.completed": checkout_completed,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_paid,
    "invoice.payment_failed": invoice_payment_failed,
    "customer.deleted": customer_deleted,
}
