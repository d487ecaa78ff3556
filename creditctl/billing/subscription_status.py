"""The Stripe subscription statuses creditctl tells apart."""

from __future__ import annotations

from creditctl.db.models import SUBSCRIPTION_STATUSES

STATUSES = SUBSCRIPTION_STATUSES
CREDITED = frozenset({"active", "trialing"})  # the period's plan credits are owed
OVERDUE = frozenset({"past_due", "unpaid"})  # a payment failed: the grace period runs
ENDED = frozenset({"canceled", "incomplete_expired"})  # over: the user goes back to the default
