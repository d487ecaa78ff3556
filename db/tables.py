"""Every table as a SQLAlchemy Core object, for set-based statements built once."""

from __future__ import annotations

from sqlalchemy import Table

from creditctl.db.models import metadata


def _table(name: str) -> Table:
    """A table the models in creditctl.db.models declare (importing them registers it)."""
    return metadata.tables[name]


users = _table("users")
plans = _table("plans")
grants = _table("grants")
holds = _table("holds")
allocations = _table("hold_allocations")
entries = _table("ledger_entries")
audit_log = _table("audit_log")
subscriptions = _table("subscriptions")
stripe_requests = _table("stripe_requests")
webhook_events = _table("webhook_events")
