"""What ledger operations answer: typed results, light enough for the hot path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from creditctl.ledger.policy import Policy


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
        if self.unlimited or self.available >= policy.low_balance_threshold:
            return []
        return [
            f"low balance: {self.available} credits left "
            f"(warning threshold {policy.low_balance_threshold})"
        ]

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
    extra: dict[str, Any] = field(default_factory=dict)
