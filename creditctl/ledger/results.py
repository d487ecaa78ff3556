"""What ledger operations answer: typed results, light enough for the hot path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from creditctl.ledger.policy import Policy


def low_balance_warnings(unlimited: bool, available: int, policy: Policy) -> list[str]:
    if unlimited or available >= policy.low_balance_threshold:
        return []
    return [
        f"low balance: {available} credits left (warning threshold {policy.low_balance_threshold})"
    ]


@dataclass(frozen=True)
class Balance:
    """What a user can spend now."""

    user_id: str
    email: str
    plan: str
    unlimited: bool
    available: int
    held: int

    def warnings(self, policy: Policy) -> list[str]:
        return low_balance_warnings(self.unlimited, self.available, policy)

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "plan": self.plan,
            "unlimited": self.unlimited,
            "available": self.available,
            "held": self.held,
        }


@dataclass(frozen=True)
class Posting:
    """The result of one ledger write."""

    entry_id: int
    user_id: str
    type: str
    amount: int
    balance_after: int
    replayed: bool = False
    hold_id: int | None = None
    grant_id: int | None = None


@dataclass(frozen=True)
class Taken:
    """Credits taken from a user's balance (spent, or moved to a hold) by the spending gate."""

    user_id: str
    balance_after: int
    held: int
    plan: str
    unlimited: bool


@dataclass(frozen=True, kw_only=True)
class Deducted(Posting):
    """A deduct's usage entry, and what the user can spend after it.

    `available` is the balance now: right after this entry, or for a replayed request
    (`replayed`) the current one, while `balance_after` stays the first entry's.
    """

    available: int
    held: int
    plan: str
    unlimited: bool

    def warnings(self, policy: Policy) -> list[str]:
        return low_balance_warnings(self.unlimited, self.available, policy)
