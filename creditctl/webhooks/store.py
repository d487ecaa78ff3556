"""Storing a verified event first, once by its Stripe id, before any handler runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from creditctl.db.tables import webhook_events


def _insert_ignoring_duplicates(conn: Connection, values: dict[str, Any]) -> bool:
    statement: Any
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        statement = postgresql_insert(webhook_events).on_conflict_do_nothing(index_elements=["id"])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(webhook_events).on_conflict_do_nothing(index_elements=["id"])
    inserted = statement.values(**values).returning(webhook_events.c.id)
    return conn.execute(inserted).first() is not None


def store(
    conn: Connection, event: dict[str, Any], raw: str, *, now: datetime, source: str = "webhook"
) -> bool:
    """Store a verified event as pending; False when its id is already stored."""
    from creditctl.billing.payloads import when

    return _insert_ignoring_duplicates(
        conn,
        {
            "id": event["id"],
            "type": event["type"][:128],
            "api_version": (event.get("api_version") or None),
            "stripe_created": when(event["created"]),
            "payload": raw,
            "source": source,
            "received_at": now,
            "status": "pending",
            "attempts": 0,
        },
    )
