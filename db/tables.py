"""Every table as a SQLAlchemy Core object, for set-based statements built once."""

from __future__ import annotations

from creditctl.db.models import (
    AuditRecord,
    Grant,
    Hold,
    HoldAllocation,
    LedgerEntry,
    Plan,
    StripeRequest,
    Subscription,
    User,
    WebhookEvent,
)

users = User.__table__
plans = Plan.__table__
grants = Grant.__table__
holds = Hold.__table__
allocations = HoldAllocation.__table__
entries = LedgerEntry.__table__
audit_log = AuditRecord.__table__
subscriptions = Subscription.__table__
stripe_requests = StripeRequest.__table__
webhook_events = WebhookEvent.__table__
