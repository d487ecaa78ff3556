"""One event being processed, and what its handler decided."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from creditctl.billing import payloads


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
