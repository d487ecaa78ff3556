"""One event being processed, and what its handler decided."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from creditctl.billing import payloads
from creditctl.errors import InvalidEvent
from creditctl.webhooks.waiting import DEFERRED, UNMAPPED


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
        moment = payloads.when(self.event["created"])
        if moment is None:  # receive() and backfill store only events with a created time
            raise InvalidEvent(f"event {self.event_id} has no created time")
        return moment

    @property
    def stripe(self) -> Any:
        """The Stripe gateway, or None when no API key is configured."""
        return self.config.gateway


@dataclass(frozen=True)
class Result:
    status: str  # processed | ignored | deferred | unmapped
    detail: str | None = None
    user_id: str | None = None
    waiting_for: str | None = None  # deferred: a subscription id; unmapped: a customer id


def processed(detail: str, user_id: str | None = None) -> Result:
    return Result("processed", detail, user_id)


def ignored(reason: str, user_id: str | None = None) -> Result:
    return Result("ignored", reason, user_id)


def deferred(reason: str, user_id: str, subscription_id: str) -> Result:
    """Wait until the subscription is recorded (its event names the plan), then re-run."""
    return Result(DEFERRED, reason, user_id, subscription_id)


def unmapped(reason: str, customer_id: str | None) -> Result:
    """Wait until the customer is linked to a user (a checkout, a link), then re-run."""
    if not customer_id:
        return ignored(reason)  # nothing could map it later
    return Result(UNMAPPED, reason, None, customer_id)


# An invoice recorded before its subscription: as old as can be, so any real
# subscription event, however late, replaces what the invoice recorded.
PROVISIONAL = datetime(1970, 1, 1, tzinfo=UTC)
