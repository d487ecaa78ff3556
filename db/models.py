"""The tables. The ledger's rules are in the schema too: CHECK constraints and unique keys.

Timestamps are aware UTC (SQLModel's UTCDateTime). `users.balance` caches the sum
of the user's ledger amounts and of their grants' `remaining`; `users.held` caches their open holds.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MAX_CREDITS = 1_000_000_000
ENTRY_TYPES = (
    "grant",
    "usage",
    "refund",
    "bonus",
    "adjustment",
    "expiry",
    "reset",
    "hold",
    "capture",
    "release",
)
GRANT_SOURCES = ("plan", "bonus", "admin", "refund", "promotion")
HOLD_STATUSES = ("open", "captured", "released", "expired")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Plan(SQLModel, table=True):
    __tablename__ = "plans"
    __table_args__ = (
        sa.CheckConstraint("credits IS NULL OR credits >= 0", name="credits_not_negative"),
        sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    name: str = Field(primary_key=True, max_length=64)
    display_name: str = Field(max_length=128)
    credits: int | None = Field(default=None, description="credits per period; NULL: unlimited")
    features: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    amount: int = 0
    currency: str = Field(default="usd", max_length=3)
    interval: str = Field(default="month", max_length=8)
    lookup_key: str = Field(max_length=200)
    rollover: bool = False
    stripe_product_id: str | None = Field(default=None, max_length=255)
    stripe_price_id: str | None = Field(default=None, max_length=255)
    updated_at: datetime


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
        sa.CheckConstraint(f"balance <= {MAX_CREDITS}", name="balance_bounded"),
        sa.CheckConstraint("held >= 0", name="held_not_negative"),
        sa.CheckConstraint("email_key = lower(email_key)", name="email_key_lowercase"),
    )

    id: str = Field(primary_key=True, max_length=128)
    email: str = Field(max_length=254)
    email_key: str = Field(max_length=254, unique=True)
    name: str | None = Field(default=None, max_length=200)
    plan: str = Field(foreign_key="plans.name", max_length=64)
    balance: int = 0
    held: int = 0
    next_grant_expiry: datetime | None = None
    next_hold_expiry: datetime | None = None
    past_due_since: datetime | None = Field(
        default=None, description="when Stripe first reported the subscription unpaid"
    )
    period_start: datetime | None = None
    period_end: datetime | None = None
    stripe_customer_id: str | None = Field(default=None, max_length=255, unique=True)
    created_at: datetime


class Grant(SQLModel, table=True):
    __tablename__ = "grants"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
        sa.CheckConstraint(_one_of("source", GRANT_SOURCES), name="source_known"),
        sa.UniqueConstraint("user_id", "period_key"),
        sa.Index(None, "user_id", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="users.id", max_length=128)
    source: str = Field(max_length=16)
    amount: int
    remaining: int
    expires_at: datetime | None = None
    period_key: str | None = Field(default=None, max_length=128)
    created_at: datetime


class Hold(SQLModel, table=True):
    __tablename__ = "holds"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("captured >= 0 AND captured <= amount", name="captured_in_range"),
        sa.CheckConstraint(_one_of("status", HOLD_STATUSES), name="status_known"),
        sa.Index(None, "user_id", "status"),
        sa.Index(None, "status", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="users.id", max_length=128)
    amount: int
    captured: int = 0
    status: str = Field(default="open", max_length=16)
    reference: str | None = Field(default=None, max_length=200)
    created_at: datetime
    expires_at: datetime
    settled_at: datetime | None = None


class HoldAllocation(SQLModel, table=True):
    """Which grants a hold took its credits from, so a release gives them back."""

    __tablename__ = "hold_allocations"
    __table_args__ = (sa.CheckConstraint("amount >= 0", name="amount_not_negative"),)

    hold_id: int = Field(foreign_key="holds.id", primary_key=True)
    grant_id: int = Field(foreign_key="grants.id", primary_key=True)
    amount: int


class LedgerEntry(SQLModel, table=True):
    """One append-only change to a balance. Never updated, never deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.CheckConstraint(_one_of("type", ENTRY_TYPES), name="type_known"),
        sa.CheckConstraint(
            f"amount >= -{MAX_CREDITS} AND amount <= {MAX_CREDITS}", name="amount_bounded"
        ),
        sa.CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        sa.CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        sa.UniqueConstraint("user_id", "idempotency_key"),
        sa.Index(None, "user_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="users.id", max_length=128)
    type: str = Field(max_length=16)
    amount: int
    balance_after: int
    quantity: int = 0
    description: str = Field(default="", max_length=500)
    actor: str = Field(max_length=200)
    reference: str | None = Field(default=None, max_length=200)
    idempotency_key: str | None = Field(default=None, max_length=200)
    request_hash: str | None = Field(default=None, max_length=64)
    grant_id: int | None = Field(default=None, foreign_key="grants.id")
    hold_id: int | None = Field(default=None, foreign_key="holds.id", index=True)
    reverses_entry_id: int | None = Field(
        default=None, foreign_key="ledger_entries.id", unique=True
    )
    created_at: datetime


class AuditRecord(SQLModel, table=True):
    """Who did what by hand, and why."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    operator: str = Field(max_length=200)
    action: str = Field(max_length=32)
    user_id: str | None = Field(default=None, max_length=128, index=True)
    entry_id: int | None = Field(default=None, foreign_key="ledger_entries.id")
    reason: str = Field(max_length=500)
    details: dict = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime


metadata = SQLModel.metadata


SUBSCRIPTION_STATUSES = (
    "active",
    "trialing",
    "past_due",
    "canceled",
    "unpaid",
    "incomplete",
    "incomplete_expired",
    "paused",
)


class Subscription(SQLModel, table=True):
    """A user's Stripe subscription as creditctl last applied it.

    `last_event_created` is Stripe's `created` time of the newest change applied, so an
    older change that arrives late never overwrites a newer one; `last_payment_created` does
    the same for payment news (a paid or failed invoice), which clears or starts the grace
    period of `users.past_due_since`.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.CheckConstraint(_one_of("status", SUBSCRIPTION_STATUSES), name="status_known"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="users.id", max_length=128, index=True)
    stripe_subscription_id: str = Field(max_length=255, unique=True)
    stripe_customer_id: str = Field(max_length=255)
    stripe_price_id: str | None = Field(default=None, max_length=255)
    plan: str | None = Field(default=None, foreign_key="plans.name", max_length=64)
    status: str = Field(max_length=24)
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    last_event_created: datetime | None = None
    last_payment_created: datetime | None = Field(
        default=None,
        description="Stripe's created time of the newest payment news applied (paid or failed)",
    )
    created_at: datetime
    updated_at: datetime


class StripeRequest(SQLModel, table=True):
    """The idempotency key of a Stripe write in flight, so a retry after a crash reuses it.

    The row is removed once Stripe has answered, so the next request for the same
    operation gets a fresh key.
    """

    __tablename__ = "stripe_requests"

    operation: str = Field(primary_key=True, max_length=255)
    idempotency_key: str = Field(max_length=255, unique=True)
    created_at: datetime


WEBHOOK_STATUSES = ("pending", "processed", "failed", "ignored", "deferred", "unmapped")


class WebhookEvent(SQLModel, table=True):
    """A Stripe event as received (or backfilled), stored before any handler runs.

    The Stripe event id is the primary key, so a redelivery never makes a second row;
    `status` moves pending -> processed|ignored|failed|deferred|unmapped, and back to pending
    for a retry. `deferred` waits for the subscription named in `waiting_for` (an invoice
    whose price only its subscription maps to a plan); `unmapped` waits for the Stripe
    customer in `waiting_for` to be linked to a user.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        sa.CheckConstraint(_one_of("status", WEBHOOK_STATUSES), name="status_known"),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        sa.Index(None, "status", "received_at"),
        sa.Index(None, "status", "waiting_for"),
    )

    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=128, index=True)
    api_version: str | None = Field(default=None, max_length=64)
    stripe_created: datetime
    payload: str = Field(sa_type=sa.Text)
    source: str = Field(default="webhook", max_length=16)
    received_at: datetime = Field(index=True)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=1000)
    ignored_reason: str | None = Field(default=None, max_length=500)
    waiting_for: str | None = Field(default=None, max_length=255)
    user_id: str | None = Field(default=None, max_length=128, index=True)
    processed_at: datetime | None = None
