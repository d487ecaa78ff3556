"""Invoice events: a paid invoice grants its period once; a failed one starts the grace period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from creditctl.billing import payloads
from creditctl.billing.period_credits import period_prefix
from creditctl.billing.subscription_status import ENDED
from creditctl.billing.subscriptions import apply_subscription_change
from creditctl.clock import iso
from creditctl.db.tables import grants
from creditctl.ledger.statements import LOCK_USER
from creditctl.ledger.sweep import expire_grants
from creditctl.webhooks.context import (
    PROVISIONAL,
    EventContext,
    Result,
    deferred,
    ignored,
    processed,
    unmapped,
)
from creditctl.webhooks.mapping import (
    fresh,
    link_customer,
    local_plan,
    map_plan,
    map_user,
    recorded_subscription,
)


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
        return cls(
            invoice["id"],
            subscription_id,
            invoice.get("customer"),
            payloads.line_price(line),
            start,
            end,
            invoice.get("billing_reason"),
            payloads.invoice_metadata(invoice),
        )


def invoice_paid(ctx: EventContext) -> Result:
    """invoice.paid / invoice.payment_succeeded: the period's plan credits, once per period."""
    iid = ctx.obj["id"]
    invoice, _ = fresh(ctx, lambda s: s.retrieve(lambda v1: v1.invoices.retrieve(iid)), ctx.obj)
    if not payloads.invoice_is_paid(invoice):
        return ignored(f"invoice {iid} is not paid (status {invoice.get('status')})")
    found = _subscriber(ctx, invoice)
    if isinstance(found, Result):
        return found
    paid, user_id = found
    # What the database knows (the price's plan, or the recorded subscription's) before
    # asking Stripe, which may be unreachable; and Stripe's answer before taking the lock.
    plan = (
        local_plan(ctx.conn, paid.price)
        or _recorded_plan(recorded_subscription(ctx.conn, paid.subscription_id), paid)
        or map_plan(ctx, paid.price)
    )
    # Waiting is decided under the user's lock, which the subscription's transaction holds
    # when it releases waiting invoices: either this sees the subscription, or it sees this.
    lock_user(ctx.conn, user_id)
    recorded = recorded_subscription(ctx.conn, paid.subscription_id)
    plan = plan or _recorded_plan(recorded, paid)
    if plan is None and waits_for_plan(recorded):
        # A dashboard price known only by id: the subscription's own event names its plan.
        # Recorded from an invoice (a payment failure first), it may not know it yet either.
        what = "is recorded" if recorded is None else "names it"
        return deferred(
            f"price {payloads.obj_id(paid.price)} of invoice {iid} maps "
            f"to no plan until subscription {paid.subscription_id} {what}",
            user_id,
            paid.subscription_id,
        )
    if plan is None:
        return ignored(
            f"price {payloads.obj_id(paid.price)} of invoice {iid} maps to no plan "
            "(price id, lookup key, metadata.plan)",
            user_id,
        )
    return _grant_period(ctx, paid, user_id, plan, recorded)


def lock_user(conn: Connection, user_id: str) -> None:
    """Take the user's row lock (creditctl.ledger.statements) for the rest of the transaction."""
    conn.execute(LOCK_USER, {"uid": user_id})


def waits_for_plan(recorded: Row | None) -> bool:
    """True while a subscription event may still name the subscription's plan."""
    return recorded is None or (recorded.plan is None and recorded.status not in ENDED)


def _recorded_plan(recorded: Row | None, paid: PaidInvoice) -> str | None:
    """The recorded subscription's plan, when it was recorded with the invoice's price."""
    if recorded is None or recorded.stripe_price_id != payloads.obj_id(paid.price):
        return None
    return recorded.plan


def _grant_period(
    ctx: EventContext, paid: PaidInvoice, user_id: str, plan: str, recorded: Row | None
) -> Result:
    """Grant the paid period's plan credits, once, until the period's end.

    The user paid for the period, so its credits are theirs whatever happens to the
    subscription meanwhile: an invoice processed after the subscription ended (Stripe may
    deliver `customer.subscription.deleted` first) grants them as one processed before would
    have, expiring at the period's end, without touching the ended state or the user's plan.
    A period already over when the invoice is processed grants nothing, in either order. The
    period's grant key (billing.period_credits) makes every later copy a no-op.
    """
    start, end = paid.period_start, paid.period_end
    if paid.billing_reason == "subscription_update":
        # A mid-period change: its lines are prorations; the credits belong to the current period.
        if recorded is None:
            return ignored(
                f"update invoice {paid.invoice_id} for subscription "
                f"{paid.subscription_id} not recorded yet; its "
                "customer.subscription.updated applies the change",
                user_id,
            )
        start, end = recorded.current_period_start, recorded.current_period_end
    if start is None or end is None or end <= ctx.now:
        return processed(
            f"invoice {paid.invoice_id} is for a period that has ended "
            f"({iso(end)}); nothing granted",
            user_id,
        )
    link_customer(ctx.conn, user_id, payloads.obj_id(paid.customer))
    applied = apply_subscription_change(
        ctx.conn,
        user_id=user_id,
        subscription_id=paid.subscription_id,
        plan=plan,
        period_start=start,
        period_end=end,
        status="active",
        stripe_created=_grant_only(recorded, ctx.created),
        actor=ctx.event_id,
        now=ctx.now,
        customer_id=payloads.obj_id(paid.customer),
        price_id=payloads.obj_id(paid.price),
        cancel_at_period_end=bool(recorded.cancel_at_period_end) if recorded else False,
        paid=True,
        ended_plan=ctx.config.default_plan,
        payment_created=ctx.created,
    )
    expired = _expire_previous_plan_credits(
        ctx.conn, user_id, paid.subscription_id, start, actor=ctx.event_id, now=ctx.now
    )
    return processed(
        f"{plan} period {iso(start)}..{iso(end)} of {paid.subscription_id} "
        f"({paid.billing_reason or 'no billing_reason'}): granted "
        f"{applied.granted}, expired {expired} from earlier periods",
        user_id,
    )


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


def _provisional(recorded: Row) -> bool:
    """True when only invoices recorded the subscription: no subscription event yet."""
    return recorded.last_event_created is not None and recorded.last_event_created <= PROVISIONAL


def _expire_previous_plan_credits(
    conn: Connection,
    user_id: str,
    subscription_id: str,
    start: datetime,
    *,
    actor: str,
    now: datetime,
) -> int:
    """Expire what remains of the subscription's earlier periods' plan grants; returns the credits.

    Earlier means a dated plan grant of this subscription ending before this period ends
    that is not one of this period's own. Rollover grants (no end) and grants from other
    sources or the free plan's local periods are left to their own expiry.
    """
    keep = period_prefix(subscription_id, start)
    rows = conn.execute(
        sa.select(grants.c.id, grants.c.remaining)
        .where(
            grants.c.user_id == user_id,
            grants.c.source == "plan",
            grants.c.remaining > 0,
            grants.c.expires_at.is_not(None),
            grants.c.expires_at <= start + timedelta(days=1),
            grants.c.period_key.startswith(f"{subscription_id}:", autoescape=True),
            ~grants.c.period_key.startswith(keep, autoescape=True),
        )
        .order_by(grants.c.id)
    ).all()
    return expire_grants(
        conn,
        user_id,
        [row.id for row in rows],
        actor=actor,
        now=now,
        why=": a new plan period started",
    )


def _subscriber(ctx: EventContext, invoice: dict[str, Any]) -> tuple[PaidInvoice, str] | Result:
    """The invoice's subscription and user; or the answer when it names neither."""
    paid = PaidInvoice.read(invoice)
    if paid is None:
        return ignored(f"invoice {invoice['id']} belongs to no subscription")
    user_id = map_user(
        ctx, subscription_id=paid.subscription_id, customer=paid.customer, metadata=[paid.metadata]
    )
    if user_id is None:
        return unmapped(
            f"invoice {invoice['id']} of subscription {paid.subscription_id} maps to no user",
            payloads.obj_id(paid.customer),
        )
    return paid, user_id


def invoice_payment_failed(ctx: EventContext) -> Result:
    """Mark the subscription past_due (shown by `creditctl account`); usage grace starts."""
    invoice = ctx.obj
    found = _subscriber(ctx, invoice)
    if isinstance(found, Result):
        return found
    paid, user_id = found
    lock_user(ctx.conn, user_id)
    recorded = recorded_subscription(ctx.conn, paid.subscription_id)
    if recorded is not None and recorded.status in ENDED:
        return processed(f"subscription {paid.subscription_id} already ended", user_id)
    if (
        recorded is not None
        and recorded.last_payment_created is not None
        and ctx.created < recorded.last_payment_created
    ):
        # A newer payment (or failure) is already applied: this failure is old news.
        return processed(
            f"payment of invoice {invoice['id']} failed before the newest payment news "
            f"of subscription {paid.subscription_id}; kept",
            user_id,
        )
    state = _failed_state(ctx, paid, recorded)
    applied = apply_subscription_change(
        ctx.conn,
        user_id=user_id,
        subscription_id=paid.subscription_id,
        status="past_due",
        stripe_created=_failure_dated(recorded, ctx.created),
        actor=ctx.event_id,
        now=ctx.now,
        customer_id=payloads.obj_id(paid.customer),
        ended_plan=ctx.config.default_plan,
        payment_created=ctx.created,
        **state,
    )
    what = "past_due" if applied.state_recorded else "older than the recorded state; kept"
    return processed(
        f"payment of invoice {invoice['id']} failed: subscription {paid.subscription_id} {what}",
        user_id,
    )


def _failure_dated(recorded: Row | None, created: datetime) -> datetime:
    """The `created` a failure records the subscription's state with.

    Once a subscription event recorded it, the failure is a newer change (past_due from
    then on). Before that, what the failure records (its plan may be unknown, no pending
    cancel) is provisional like a paid invoice's: any subscription event, even an older one,
    records its own state over it, and keeps past_due while this failure is the newest
    payment news (billing.subscriptions).
    """
    if recorded is None or _provisional(recorded):
        return PROVISIONAL
    return created


def _failed_state(ctx: EventContext, paid: PaidInvoice, recorded: Row | None) -> dict[str, Any]:
    if recorded is not None:
        return {
            "plan": recorded.plan,
            "period_start": recorded.current_period_start,
            "period_end": recorded.current_period_end,
            "price_id": recorded.stripe_price_id,
            "cancel_at_period_end": recorded.cancel_at_period_end,
        }
    return {
        "plan": map_plan(ctx, paid.price),
        "period_start": paid.period_start,
        "period_end": paid.period_end,
        "price_id": payloads.obj_id(paid.price),
    }
