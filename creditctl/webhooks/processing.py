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
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from creditctl.clock import utcnow
from creditctl.db.engine import read, write
from creditctl.db.tables import webhook_events
from creditctl.errors import CreditctlError, UnknownEvent
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.store import store
from creditctl.webhooks.waiting import WAITING, ready, release

if TYPE_CHECKING:
    from creditctl.webhooks.context import Result

RETRYABLE = ("pending", "failed")
# A delivery (or replay) of an event runs it unless it is done: a waiting one is run again.
CLAIMABLE = (*RETRYABLE, *WAITING)
STUCK_AFTER = timedelta(minutes=1)  # a pending event this old lost its process: retry it
MAX_ERROR_CHARS = 1000
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Outcome:
    """What processing one stored event did."""

    event_id: str
    type: str
    status: str  # pending | processed | failed | ignored | deferred | unmapped
    ran: bool  # False: already processed/ignored (or claimed elsewhere), nothing run
    detail: str | None = None
    user_id: str | None = None
    released: tuple[str, ...] = ()  # waiting events this one released, to run next

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
    """Run a stored event's handler once; `force` re-runs a processed or ignored one too.

    Events the run released (they waited for what it recorded) are run right after; if
    this process dies first, they are pending and every retry path finds them.
    """
    claimable = (*CLAIMABLE, "processed", "ignored") if force else CLAIMABLE
    try:
        with write(engine) as conn:
            outcome = _claim_and_handle(conn, event_id, claimable, config, now or utcnow())
    except Exception as exc:  # noqa: BLE001 - every handler failure is recorded and retried
        return _record_failure(engine, event_id, _error_text(exc), now or utcnow())
    for released in outcome.released:
        process(engine, released, config, now=now)
    return outcome


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
            ignored_reason=_reason(result),
            waiting_for=result.waiting_for,
        )
    )
    released: tuple[str, ...] = ()
    if result.status == "processed" and result.user_id:
        # In this transaction, under the user's lock the handler took: nothing waiting
        # for what it recorded can slip past (see webhooks.waiting).
        released = tuple(release(conn, result.user_id))
    return Outcome(
        event_id, claimed.type, result.status, True, result.detail, result.user_id, released
    )


def _reason(result: Result) -> str | None:
    """Why an event was not processed (ignored, or what it waits for), as the column holds it."""
    if result.status == "processed" or not result.detail:
        return None
    return result.detail[:MAX_REASON_CHARS]


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
                    (webhook_events.c.status.in_(CLAIMABLE), "failed"),
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
        # Failed ones, pending ones whose process died between storing and handling, and
        # waiting ones whose wait is over however it ended.
        stuck = (now or utcnow()) - STUCK_AFTER
        query = query.where(
            sa.or_(
                webhook_events.c.status == "failed",
                sa.and_(webhook_events.c.status == "pending", webhook_events.c.received_at < stuck),
                ready(),
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
