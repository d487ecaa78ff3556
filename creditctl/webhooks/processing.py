"""Processing stored events exactly once, retrying failures, replay and backfill.

Processing claims the stored row with a conditional UPDATE in the same transaction as the
handler's changes and the final status, so two deliveries of one event, even at the same
moment, apply it once: on PostgreSQL the second UPDATE waits for the first transaction's row
lock and then no longer matches; on SQLite writers queue on BEGIN IMMEDIATE. A failing
handler's changes roll back with the claim; the failure is then recorded in a separate
transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from creditctl.clock import utcnow
from creditctl.db.engine import read, write
from creditctl.db.tables import webhook_events
from creditctl.errors import CreditctlError, UnknownEvent
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.store import store

RETRYABLE = ("pending", "failed")
SUBSCRIPTION_EVENTS = ("customer.subscription.created", "customer.subscription.updated")
STUCK_AFTER = timedelta(minutes=1)  # a pending event this old lost its process: retry it
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Outcome:
    """What processing one stored event did."""

    event_id: str
    type: str
    status: str  # pending | processed | failed | ignored
    ran: bool  # False: already processed/ignored (or claimed elsewhere), nothing run
    detail: str | None = None
    user_id: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "status": self.status,
            "ran": self.ran,
            "detail": self.detail,
            "user_id": self.user_id,
        }


# --- processing --------------------------------------------------------------------------------


def process(
    engine: Engine,
    event_id: str,
    config: WebhookConfig,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> Outcome:
    """Run a stored event's handler once; `force` re-runs a processed or ignored one too."""
    claimable = ("pending", "failed", "processed", "ignored") if force else RETRYABLE
    try:
        with write(engine) as conn:
            outcome = _claim_and_handle(conn, event_id, claimable, config, now or utcnow())
    except Exception as exc:  # noqa: BLE001 - every handler failure is recorded and retried
        return _record_failure(engine, event_id, _error_text(exc), now or utcnow())
    if outcome.ran and outcome.status == "processed" and outcome.type in SUBSCRIPTION_EVENTS:
        revisit_deferred(engine, event_id, config, now=now)
    return outcome


def revisit_deferred(
    engine: Engine, event_id: str, config: WebhookConfig, *, now: datetime | None = None
) -> list[Outcome]:
    """Re-run invoices that waited for this event's subscription to name their plan."""
    from creditctl.webhooks.context import DEFERRED

    with read(engine) as conn:
        payload = conn.execute(
            sa.select(webhook_events.c.payload).where(webhook_events.c.id == event_id)
        ).scalar_one()
        subscription_id = json.loads(payload)["data"]["object"]["id"]
        waiting = (
            conn.execute(
                sa.select(webhook_events.c.id)
                .where(
                    webhook_events.c.status == "ignored",
                    webhook_events.c.ignored_reason.startswith(DEFERRED, autoescape=True),
                    webhook_events.c.payload.contains(f'"{subscription_id}"', autoescape=True),
                )
                .order_by(webhook_events.c.stripe_created, webhook_events.c.id)
            )
            .scalars()
            .all()
        )
    return [process(engine, one, config, force=True, now=now) for one in waiting]


def _claim_and_handle(
    conn: Connection,
    event_id: str,
    claimable: tuple[str, ...],
    config: WebhookConfig,
    now: datetime,
) -> Outcome:
    from creditctl.webhooks.context import EventContext
    from creditctl.webhooks.handlers import dispatch

    claimed = conn.execute(
        webhook_events.update()
        .where(webhook_events.c.id == event_id, webhook_events.c.status.in_(claimable))
        .values(attempts=webhook_events.c.attempts + 1)
        .returning(webhook_events.c.type, webhook_events.c.payload)
    ).first()
    if claimed is None:
        return _unclaimed(conn, event_id)
    result = dispatch(
        EventContext(conn=conn, event=json.loads(claimed.payload), now=now, config=config)
    )
    conn.execute(
        webhook_events.update()
        .where(webhook_events.c.id == event_id)
        .values(
            status=result.status,
            processed_at=now,
            last_error=None,
            user_id=result.user_id,
            ignored_reason=result.detail if result.status == "ignored" else None,
        )
    )
    return Outcome(event_id, claimed.type, result.status, True, result.detail, result.user_id)


def _unclaimed(conn: Connection, event_id: str) -> Outcome:
    row = conn.execute(
        sa.select(webhook_events.c.type, webhook_events.c.status, webhook_events.c.user_id).where(
            webhook_events.c.id == event_id
        )
    ).first()
    if row is None:
        raise UnknownEvent(f"no stored webhook event {event_id!r}; see `creditctl webhooks list`")
    return Outcome(event_id, row.type, row.status, False, f"already {row.status}", row.user_id)


def _record_failure(engine: Engine, event_id: str, error: str, now: datetime) -> Outcome:
    """Mark the event failed (unless it was processed meanwhile) with the error."""
    with write(engine) as conn:
        row = conn.execute(
            webhook_events.update()
            .where(webhook_events.c.id == event_id)
            .values(
                attempts=webhook_events.c.attempts + 1,
                last_error=error,
                status=sa.case(
                    (webhook_events.c.status.in_(RETRYABLE), "failed"),
                    else_=webhook_events.c.status,
                ),
            )
            .returning(webhook_events.c.type, webhook_events.c.status)
        ).first()
    if row is None:
        raise UnknownEvent(f"no stored webhook event {event_id!r}; see `creditctl webhooks list`")
    return Outcome(event_id, row.type, "failed", True, error)


def _error_text(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, CreditctlError) else f"{type(exc).__name__}: {exc}"
    return text.strip().splitlines()[0][:MAX_ERROR_CHARS] if text.strip() else type(exc).__name__


def replay(
    engine: Engine,
    config: WebhookConfig,
    *,
    event_id: str | None = None,
    failed: bool = False,
    since: datetime | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> list[Outcome]:
    """Re-run stored events (one, every failed one, or those received since a date), in order."""
    if event_id is not None:
        return [process(engine, event_id, config, force=force)]
    query = sa.select(webhook_events.c.id).order_by(
        webhook_events.c.stripe_created, webhook_events.c.received_at
    )
    if failed:
        # Failed ones, and pending ones whose process died between storing and handling.
        stuck = (now or utcnow()) - STUCK_AFTER
        query = query.where(
            sa.or_(
                webhook_events.c.status == "failed",
                sa.and_(webhook_events.c.status == "pending", webhook_events.c.received_at < stuck),
            )
        )
    if since is not None:
        query = query.where(webhook_events.c.received_at >= since)
    with read(engine) as conn:
        ids = conn.execute(query).scalars().all()
    return [process(engine, one, config, force=force) for one in ids]


def backfill(
    engine: Engine, config: WebhookConfig, *, since: datetime, now: datetime | None = None
) -> dict[str, int]:
    """Page through Stripe's events since a date; store and process the ones not seen yet."""
    if config.gateway is None:
        from creditctl.errors import ConfigError

        raise ConfigError("STRIPE_API_KEY is not set; backfill reads Stripe's events API")
    events = list(
        config.gateway.list_all(
            lambda v1, p: v1.events.list(params=p), {"created": {"gte": int(since.timestamp())}}
        )
    )
    counts = {
        "listed": len(events),
        "stored": 0,
        "already_stored": 0,
        "processed": 0,
        "ignored": 0,
        "failed": 0,
    }
    for event in sorted(events, key=lambda e: (e["created"], e["id"])):
        counts["stored" if _store_listed(engine, event, now) else "already_stored"] += 1
    for outcome in _process_pending(engine, config, (e["id"] for e in events)):
        if outcome.ran:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def _store_listed(engine: Engine, event: dict[str, Any], now: datetime | None) -> bool:
    with write(engine) as conn:
        return store(conn, event, json.dumps(event), now=now or utcnow(), source="backfill")


def _process_pending(engine: Engine, config: WebhookConfig, ids: Iterable[str]) -> list[Outcome]:
    wanted = set(ids)
    with read(engine) as conn:
        pending = (
            conn.execute(
                sa.select(webhook_events.c.id)
                .where(webhook_events.c.status.in_(RETRYABLE))
                .order_by(webhook_events.c.stripe_created, webhook_events.c.id)
            )
            .scalars()
            .all()
        )
    return [process(engine, one, config) for one in pending if one in wanted]
