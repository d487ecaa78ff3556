"""One handler per Stripe event type, registered in HANDLERS; each runs in the caller's transaction.

Mapping rules (so prices made in the dashboard work too): a price or legacy plan maps to a
local plan by the price id `plans sync` recorded, else its lookup key, else `metadata.plan`
on the price/plan or on its product. A customer or subscription maps to a user by a stored
link, else `client_reference_id` (checkout), else `metadata.creditctl_user_id` on the
subscription, the invoice's subscription details, or the customer. Nothing is guessed from
an email: an event that maps to nothing is ignored with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from creditctl import stripe_payloads as payloads
from creditctl.amounts import iso
from creditctl.ledger import LOCK_USER, post_entry
from creditctl.subscriptions import (
    ENDED,
    apply_subscription_change,
    from_stripe,
    period_prefix,
    plan_for_price,
    subscriptions,
)
from creditctl.tables import grants, users


@dataclass
class EventContext:
    """One event being processed: its transaction, payload, clock and configuration."""

    conn: Connection
    event: dict[str, Any]
    now: datetime
    config: Any  # creditctl.webhooks.WebhookConfig

    @property
    def obj(self) -> dict[str, Any]:
        return self.event["data"]["object"]

    @property
    def event_id(self) -> str:
        return self.event["id"]

    @property
    def created(self) -> datetime:
        return payloads.when(self.event["created"])

    @property
    def stripe(self) -> Any:
        """The Stripe gateway, or None when no API key is configured."""
        return self.config.gateway


@dataclass(frozen=True)
class Result:
    status: str  # processed | ignored
    detail: str | None = None
    user_id: str | None = None


def processed(detail: str, user_id: str | None = None) -> Result:
    return Result("processed", detail, user_id)


DEFERRED = "deferred: "
PROVISIONAL = datetime(1970, 1, 1, tzinfo=UTC)


def ignored(reason: str, user_id: str | None = None) -> Result:
    return Result("ignored", reason, user_id)


def dispatch(ctx: EventContext) -> Result:
    handler = HANDLERS.get(ctx.event["type"])
    if handler is None:
        return ignored(f"no handler for event type {ctx.event['type']}")
    return handler(ctx)


# --- mapping -----------------------------------------------------------------------------------

def _existing_user(conn: Connection, user_id: Any) -> str | None:
    if not isinstance(user_id, str) or not user_id:
        return None
    return conn.execute(sa.select(users.c.id).where(users.c.id == user_id)).scalar()


def _linked_user(conn: Connection, subscription_id: str | None,
                 customer_id: str | None) -> str | None:
    if subscription_id:
        found = conn.execute(sa.select(subscriptions.c.user_id).where(
            subscriptions.c.stripe_subscription_id == subscription_id)).scalar()
        if found:
            return found
    if customer_id:
        return conn.execute(sa.select(users.c.id)
                            .where(users.c.stripe_customer_id == customer_id)).scalar()
    return None


def _customer_metadata_user(ctx: EventContext, customer: Any) -> str | None:
    """`metadata.creditctl_user_id` of the customer, read from Stripe when not expanded."""
    if isinstance(customer, dict):
        return payloads.metadata_user(customer)
    if not customer or ctx.stripe is None:
        return None
    found = ctx.stripe.retrieve(lambda v1: v1.customers.retrieve(customer))
    return payloads.metadata_user(found) if found and not found.get("deleted") else None


def map_user(ctx: EventContext, *, subscription_id: str | None, customer: Any,
             client_reference_id: str | None = None,
             metadata: Iterable[dict[str, Any] | None] = ()) -> str | None:
    """The local user an event is about, by the mapping rules above."""
    customer_id = payloads.obj_id(customer)
    found = _linked_user(ctx.conn, subscription_id, customer_id)
    if found:
        return found
    candidates = [client_reference_id]
    candidates += [(m or {}).get("creditctl_user_id") for m in metadata]
    for candidate in candidates:
        found = _existing_user(ctx.conn, candidate)
        if found:
            return found
    return _existing_user(ctx.conn, _customer_metadata_user(ctx, customer))


def map_plan(ctx: EventContext, price: Any) -> str | None:
    """The local plan of a price or legacy plan, by the mapping rules above."""
    price_id, lookup_key, price_plan, product = payloads.price_fields(price)
    if price_id and not isinstance(price, dict) and ctx.stripe is not None:
        found = plan_for_price(ctx.conn, price_id)
        if found:
            return found
        fetched = ctx.stripe.retrieve(lambda v1: v1.prices.retrieve(price_id))
        if fetched:
            _, lookup_key, price_plan, product = payloads.price_fields(fetched)
    found = plan_for_price(ctx.conn, price_id, lookup_key, price_plan)
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


def link_customer(conn: Connection, user_id: str, customer_id: str | None, *,
                  replace: bool = False) -> str | None:
    """Record the user's Stripe customer; returns why not when another user holds it."""
    if not customer_id:
        return None
    holder = conn.execute(sa.select(users.c.id)
                          .where(users.c.stripe_customer_id == customer_id)).scalar()
    if holder is not None:
        return None if holder == user_id else f"customer {customer_id} is linked to {holder}"
    current = conn.execute(sa.select(users.c.stripe_customer_id)
                           .where(users.c.id == user_id)).scalar()
    if current is None or replace:
        conn.execute(users.update().where(users.c.id == user_id)
                     .values(stripe_customer_id=customer_id))
    return None


def _recorded(conn: Connection, subscription_id: str) -> Row | None:
    return conn.execute(sa.select(subscriptions).where(
        subscriptions.c.stripe_subscription_id == subscription_id)).first()


def _fresh(ctx: EventContext, retrieve: Callable[[Any], dict[str, Any] | None],
           payload: dict[str, Any]) -> tuple[dict[str, Any], datetime]:
    """With webhooks.fetch_latest, the object as Stripe has it now (read now), else the payload."""
    if ctx.config.fetch_latest and ctx.stripe is not None:
        latest = retrieve(ctx.stripe)
        if latest:
            return latest, ctx.now
    return payload, ctx.created


# --- handlers ----------------------------------------------------------------------------------

def checkout_completed(ctx: EventContext) -> Result:
    """Link the user to the session's customer (and, with fetch_latest, its subscription)."""
    session = ctx.obj
    metadata_id = payloads.metadata_user(session)
    user_id = map_user(ctx, subscription_id=None, customer=None,
                       client_reference_id=session.get("client_reference_id"),
                       metadata=[{"creditctl_user_id": metadata_id}])
    customer_id = payloads.obj_id(session.get("customer"))
    user_id = user_id or _linked_user(ctx.conn, None, customer_id)
    if user_id is None:
        return ignored(f"checkout session {session.get('id')} names no known user "
                       "(client_reference_id, metadata.creditctl_user_id or customer link)")
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
    subscription, created = _fresh(ctx, lambda s: s.subscription(sid), ctx.obj)
    if ctx.event["type"].endswith(".deleted") and subscription.get("status") not in ENDED:
        subscription = {**subscription, "status": "canceled"}
    user_id = map_user(ctx, subscription_id=sid, customer=subscription.get("customer"),
                       metadata=[subscription.get("metadata")])
    if user_id is None:
        return ignored(f"subscription {sid} maps to no user: no stored link and no "
                       "metadata.creditctl_user_id on it or its customer")
    return _apply_subscription(ctx, subscription, created, user_id)


def _apply_subscription(ctx: EventContext, subscription: dict[str, Any], created: datetime,
                        user_id: str) -> Result:
    fields = from_stripe(subscription)
    plan = map_plan(ctx, payloads.subscription_item_price(subscription))
    if plan is None and fields["status"] not in ENDED:
        return ignored(f"price {fields['price_id']} of subscription {fields['subscription_id']} "
                       "maps to no plan (price id, lookup key, metadata.plan)", user_id)
    link_customer(ctx.conn, user_id, fields["customer_id"])
    applied = apply_subscription_change(
        ctx.conn, user_id=user_id, subscription_id=fields["subscription_id"], plan=plan,
        period_start=fields["period_start"], period_end=fields["period_end"],
        status=fields["status"], stripe_created=created, actor=ctx.event_id, now=ctx.now,
        customer_id=fields["customer_id"], price_id=fields["price_id"],
        cancel_at_period_end=fields["cancel_at_period_end"],
        ended_plan=ctx.config.default_plan)
    what = "recorded" if applied.state_recorded else "older than the recorded state; kept"
    return processed(f"subscription {fields['subscription_id']} {fields['status']} {what}; "
                     f"user on {applied.user_plan}, granted {applied.granted}", user_id)


@dataclass(frozen=True)
class PaidInvoice:
    """What an invoice says about a subscription period, read from either payload generation."""

    invoice_id: str
    subscription_id: str
    customer: Any
    price: Any
    period_start: datetime | None
    period_end: datetime | None
    billing_reason: str | None
    metadata: dict[str, Any]

    @classmethod
    def read(cls, invoice: dict[str, Any]) -> PaidInvoice | None:
        subscription_id = payloads.invoice_subscription_id(invoice)
        if not subscription_id:
            return None
        line = payloads.subscription_line(invoice)
        start, end = payloads.invoice_period(invoice, line)
        return cls(invoice["id"], subscription_id, invoice.get("customer"),
                   payloads.line_price(line), start, end, invoice.get("billing_reason"),
                   payloads.invoice_metadata(invoice))


def invoice_paid(ctx: EventContext) -> Result:
    """invoice.paid / invoice.payment_succeeded: the period's plan credits, once per period."""
    iid = ctx.obj["id"]
    invoice, _ = _fresh(ctx, lambda s: s.retrieve(lambda v1: v1.invoices.retrieve(iid)), ctx.obj)
    if not payloads.invoice_is_paid(invoice):
        return ignored(f"invoice {iid} is not paid (status {invoice.get('status')})")
    paid = PaidInvoice.read(invoice)
    if paid is None:
        return ignored(f"invoice {iid} belongs to no subscription")
    user_id = map_user(ctx, subscription_id=paid.subscription_id, customer=paid.customer,
                       metadata=[paid.metadata])
    if user_id is None:
        return ignored(f"invoice {iid} of subscription {paid.subscription_id} maps to no user")
    recorded = _recorded(ctx.conn, paid.subscription_id)
    plan = map_plan(ctx, paid.price)
    if plan is None and recorded is not None and recorded.stripe_price_id == payloads.obj_id(
            paid.price):
        plan = recorded.plan
    if plan is None and recorded is None:
        # A dashboard price known only by id: the subscription's own event names its plan,
        # and recording it re-runs this invoice (webhooks.revisit_deferred).
        return ignored(f"{DEFERRED}price {payloads.obj_id(paid.price)} of invoice {iid} maps "
                       f"to no plan until subscription {paid.subscription_id} is recorded",
                       user_id)
    if plan is None:
        return ignored(f"price {payloads.obj_id(paid.price)} of invoice {iid} maps to no plan "
                       "(price id, lookup key, metadata.plan)", user_id)
    return _grant_period(ctx, paid, user_id, plan, recorded)


def _grant_period(ctx: EventContext, paid: PaidInvoice, user_id: str, plan: str,
                  recorded: Row | None) -> Result:
    start, end = paid.period_start, paid.period_end
    if paid.billing_reason == "subscription_update":
        # A mid-period change: its lines are prorations; the credits belong to the current period.
        if recorded is None:
            return ignored(f"update invoice {paid.invoice_id} for subscription "
                           f"{paid.subscription_id} not recorded yet; its "
                           "customer.subscription.updated applies the change", user_id)
        start, end = recorded.current_period_start, recorded.current_period_end
    if recorded is not None and recorded.status in ENDED:
        return processed(f"subscription {paid.subscription_id} already ended; nothing granted",
                         user_id)
    if start is None or end is None or end <= ctx.now:
        return processed(f"invoice {paid.invoice_id} is for a period that has ended "
                         f"({iso(end)}); nothing granted", user_id)
    link_customer(ctx.conn, user_id, payloads.obj_id(paid.customer))
    applied = apply_subscription_change(
        ctx.conn, user_id=user_id, subscription_id=paid.subscription_id, plan=plan,
        period_start=start, period_end=end, status="active",
        stripe_created=_grant_only(recorded, ctx.created), actor=ctx.event_id, now=ctx.now,
        customer_id=payloads.obj_id(paid.customer), price_id=payloads.obj_id(paid.price),
        cancel_at_period_end=bool(recorded.cancel_at_period_end) if recorded else False,
        paid=True, ended_plan=ctx.config.default_plan)
    expired = expire_previous_plan_credits(ctx.conn, user_id, paid.subscription_id, start,
                                           actor=ctx.event_id, now=ctx.now)
    return processed(f"{plan} period {iso(start)}..{iso(end)} of {paid.subscription_id} "
                     f"({paid.billing_reason or 'no billing_reason'}): granted "
                     f"{applied.granted}, expired {expired} from earlier periods", user_id)


def _grant_only(recorded: Row | None, created: datetime) -> datetime:
    """The `created` to pass so a paid invoice grants without touching recorded state.

    An invoice says nothing about cancel_at_period_end or later changes, so once the
    subscription is recorded, the invoice counts as older than the recorded state
    (apply_subscription_change then only applies the period's credits). Before that, it
    records the subscription itself, so invoice.paid works before the subscription is known.
    """
    if recorded is None:
        # What the invoice records is provisional (status active, no pending cancel): as
        # old as can be, so any real subscription event, however late, replaces it.
        return PROVISIONAL
    if recorded.last_event_created is None:
        return created
    return recorded.last_event_created - timedelta(seconds=1)


def expire_previous_plan_credits(conn: Connection, user_id: str, subscription_id: str,
                                 start: datetime, *, actor: str, now: datetime) -> int:
    """Expire what remains of the subscription's earlier periods' plan grants; returns the credits.

    Earlier means a dated plan grant of this subscription ending before this period ends
    that is not one of this period's own. Rollover grants (no end) and grants from other
    sources or the free plan's local periods are left to their own expiry.
    """
    keep = period_prefix(subscription_id, start)
    rows = conn.execute(sa.select(grants.c.id, grants.c.remaining).where(
        grants.c.user_id == user_id, grants.c.source == "plan", grants.c.remaining > 0,
        grants.c.expires_at.is_not(None), grants.c.expires_at <= start + timedelta(days=1),
        grants.c.period_key.startswith(f"{subscription_id}:", autoescape=True),
        ~grants.c.period_key.startswith(keep, autoescape=True),
    ).order_by(grants.c.id)).all()
    if not rows:
        return 0
    balance, _held = conn.execute(LOCK_USER, {"uid": user_id}).one()
    for row in rows:
        conn.execute(grants.update().where(grants.c.id == row.id).values(remaining=0))
        balance -= row.remaining
        post_entry(conn, user_id=user_id, type="expiry", amount=-row.remaining,
                   balance_after=balance, actor=actor, now=now, grant_id=row.id,
                   description=f"grant {row.id} expired: a new plan period started")
    conn.execute(users.update().where(users.c.id == user_id).values(
        balance=balance, next_grant_expiry=sa.select(sa.func.min(grants.c.expires_at)).where(
            grants.c.user_id == user_id, grants.c.remaining > 0).scalar_subquery()))
    return sum(row.remaining for row in rows)


def invoice_payment_failed(ctx: EventContext) -> Result:
    """Mark the subscription past_due (shown by `creditctl account`)."""
    invoice = ctx.obj
    paid = PaidInvoice.read(invoice)
    if paid is None:
        return ignored(f"invoice {invoice['id']} belongs to no subscription")
    user_id = map_user(ctx, subscription_id=paid.subscription_id, customer=paid.customer,
                       metadata=[paid.metadata])
    if user_id is None:
        return ignored(f"invoice {invoice['id']} of subscription {paid.subscription_id} "
                       "maps to no user")
    recorded = _recorded(ctx.conn, paid.subscription_id)
    if recorded is not None and recorded.status in ENDED:
        return processed(f"subscription {paid.subscription_id} already ended", user_id)
    state = _failed_state(ctx, paid, recorded)
    applied = apply_subscription_change(
        ctx.conn, user_id=user_id, subscription_id=paid.subscription_id, status="past_due",
        stripe_created=ctx.created, actor=ctx.event_id, now=ctx.now,
        customer_id=payloads.obj_id(paid.customer), ended_plan=ctx.config.default_plan, **state)
    what = "past_due" if applied.state_recorded else "older than the recorded state; kept"
    return processed(f"payment of invoice {invoice['id']} failed: subscription "
                     f"{paid.subscription_id} {what}", user_id)


def _failed_state(ctx: EventContext, paid: PaidInvoice, recorded: Row | None) -> dict[str, Any]:
    if recorded is not None:
        return {"plan": recorded.plan, "period_start": recorded.current_period_start,
                "period_end": recorded.current_period_end, "price_id": recorded.stripe_price_id,
                "cancel_at_period_end": recorded.cancel_at_period_end}
    return {"plan": map_plan(ctx, paid.price), "period_start": paid.period_start,
            "period_end": paid.period_end, "price_id": payloads.obj_id(paid.price)}


def customer_deleted(ctx: EventContext) -> Result:
    """Unlink the customer from its user (the subscriptions end with their own events)."""
    customer_id = ctx.obj["id"]
    user_id = ctx.conn.execute(users.update().where(users.c.stripe_customer_id == customer_id)
                               .values(stripe_customer_id=None).returning(users.c.id)).scalar()
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
