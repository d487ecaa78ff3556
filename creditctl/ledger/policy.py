"""The ledger's configurable rules and the refusals they produce; light enough for the hot path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from creditctl.errors import InsufficientCredits, PaymentOverdue


@dataclass(frozen=True)
class Policy:
    """The ledger's configurable rules."""

    max_amount: int = 1_000_000
    low_balance_threshold: int = 10
    welcome_grant: int = 5
    upgrade_hint: str = "ask an operator for a grant"
    past_due_grace_days: int = 7
    default_plan: str = "free"  # a new user's plan when none is named

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        return cls(
            max_amount=settings["credits.max_amount"],
            low_balance_threshold=settings["credits.low_balance_threshold"],
            welcome_grant=settings["credits.welcome_grant"],
            upgrade_hint=settings["credits.upgrade_hint"],
            past_due_grace_days=settings["billing.past_due_grace_days"],
            default_plan=settings["credits.default_plan"],
        )

    def usage_cutoff(self, now: datetime) -> datetime:
        """Usage stops for a user whose payment has been overdue since before this moment."""
        return now - timedelta(days=self.past_due_grace_days)

    def hint(self, user: str) -> str:
        return self.upgrade_hint.replace("{user}", user)


def insufficient(user: str, available: int, needed: int, policy: Policy) -> InsufficientCredits:
    return InsufficientCredits(
        f"insufficient credits: {user} has {available} available, {needed} needed; "
        f"{policy.hint(user)}",
        available=available,
        needed=needed,
    )


def overdue(user: str, since: datetime, policy: Policy) -> PaymentOverdue:
    days = policy.past_due_grace_days
    return PaymentOverdue(
        f"usage is suspended: the subscription payment for {user} has failed since "
        f"{since.astimezone().date().isoformat()} and the {days}-day grace period is over; "
        f"update the payment method with `creditctl stripe portal {user}`",
        since=since,
    )
