"""Stored webhook events as operators see them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Connection, Engine

from creditctl.clock import iso
from creditctl.db.engine import read
from creditctl.db.models import WEBHOOK_STATUSES
from creditctl.db.tables import webhook_events
from creditctl.errors import UnknownEvent

# pending, processed, failed, ignored, and the waiting ones: deferred, unmapped (webhooks.waiting)
STATUSES: tuple[str, ...] = WEBHOOK_STATUSES

# --- operator commands -------------------------------------------------------------------------


def event_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "source": row.source,
        "api_version": row.api_version,
        "stripe_created": iso(row.stripe_created),
        "received_at": iso(row.received_at),
        "processed_at": iso(row.processed_at),
        "attempts": row.attempts,
        "user_id": row.user_id,
        "last_error": row.last_error,
        "ignored_reason": row.ignored_reason,
        "waiting_for": row.waiting_for,
    }


def _listing(status: str | None, type_: str | None, since: datetime | None) -> sa.Select:
    query = sa.select(*[c for c in webhook_events.c if c.name != "payload"])
    if status:
        query = query.where(webhook_events.c.status == status)
    if type_:
        query = query.where(webhook_events.c.type == type_)
    if since:
        query = query.where(webhook_events.c.received_at >= since)
    return query


def list_events(
    engine: Engine,
    *,
    status: str | None = None,
    type_: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Stored events, oldest first (the newest `limit`)."""
    query = (
        _listing(status, type_, since)
        .order_by(webhook_events.c.received_at.desc(), webhook_events.c.id.desc())
        .limit(limit)
    )
    with read(engine) as conn:
        rows = conn.execute(query).all()
    return [event_dict(row) for row in reversed(rows)]


def show_event(engine: Engine, event_id: str) -> dict[str, Any]:
    """One stored event with its payload."""
    with read(engine) as conn:
        row = conn.execute(sa.select(webhook_events).where(webhook_events.c.id == event_id)).first()
    if row is None:
        raise UnknownEvent(f"no stored webhook event {event_id!r}; see `creditctl webhooks list`")
    return {**event_dict(row), "payload": json.loads(row.payload)}


def last_received_at(conn: Connection) -> datetime | None:
    return conn.execute(sa.select(func.max(webhook_events.c.received_at))).scalar()
