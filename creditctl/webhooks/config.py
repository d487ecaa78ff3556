"""What receiving and processing webhooks need from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WebhookConfig:
    """What receiving and processing need from the settings."""

    secrets: tuple[str, ...] = field(repr=False)
    tolerance: int = 300
    max_body_bytes: int = 262144
    body_timeout_seconds: int = 10
    fetch_latest: bool = False
    default_plan: str = "free"
    gateway: Any = field(default=None, repr=False)  # a stripe_gateway.Gateway, or None

    @classmethod
    def from_settings(cls, settings: Any) -> WebhookConfig:
        gateway = None
        if settings["stripe.api_key"].strip():
            from creditctl.billing.gateway import Gateway

            # Handlers may ask Stripe while they hold the event's transaction (and on SQLite
            # the write lock): bound that wait well inside the 30 s other writers will wait.
            gateway = Gateway.from_settings(settings, timeout_seconds=5.0, retries=1)
        return cls(
            secrets=tuple(settings["stripe.webhook_secret"]),
            tolerance=settings["webhooks.tolerance_seconds"],
            max_body_bytes=settings["webhooks.max_body_bytes"],
            body_timeout_seconds=settings["webhooks.body_timeout_seconds"],
            fetch_latest=settings["webhooks.fetch_latest"],
            default_plan=settings["credits.default_plan"],
            gateway=gateway,
        )
