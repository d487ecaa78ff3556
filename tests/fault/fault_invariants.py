"""What must hold after a round, however its deliveries went, read from the database.

- every event was answered with a 2xx in the end (Stripe stops redelivering only then);
- each paid (subscription, period) has exactly one plan grant, of the plan's credits,
  ending with the period; an unpaid subscription has none;
- the subscription's status is the newest event's, and the user is overdue
  (`users.past_due_since` set) exactly when that status is past_due or unpaid.

Each violation is one line naming the subscription, what was expected and what was found,
followed by the story and the stored events, so the seed's failure can be read at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fault_stories import Story

from creditctl.db.engine import make_engine
from creditctl.db.tables import grants, subscriptions, users, webhook_events


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def story_violations(conn: sa.Connection, story: Story, acked: Callable[[str], bool]) -> list[str]:
    """What is wrong with one story's subscription, as one line each."""
    found = []
    unacked = [e["id"] for e in story.events if not acked(e["id"])]
    if unacked:
        found.append(f"never answered 2xx: {', '.join(unacked)}")
    rows = conn.execute(
        sa.select(grants.c.amount, grants.c.period_key, grants.c.expires_at).where(
            grants.c.user_id == story.user_id, grants.c.source == "plan"
        )
    ).all()
    own = [r for r in rows if (r.period_key or "").startswith(f"{story.sub_id}:")]
    period = f"{story.sub_id}:{int(story.start.timestamp())}:"
    shown = [(r.amount, r.period_key) for r in own]
    if story.paid:
        right = [
            r
            for r in own
            if r.period_key.startswith(period)
            and r.amount == story.credits
            and _aware(r.expires_at) == story.end
        ]
        if len(own) != 1 or len(right) != 1:
            found.append(
                f"paid period granted {len(own)} time(s), expected once "
                f"({story.credits} ending {story.end:%Y-%m-%d %H:%M}): {shown}"
            )
    elif own:
        found.append(f"unpaid period granted: {shown}")
    status = conn.execute(
        sa.select(subscriptions.c.status).where(
            subscriptions.c.stripe_subscription_id == story.sub_id
        )
    ).scalar()
    if status != story.status:
        found.append(f"subscription status {status!r}, newest event says {story.status!r}")
    since = conn.execute(
        sa.select(users.c.past_due_since).where(users.c.id == story.user_id)
    ).scalar()
    if (since is not None) != story.overdue:
        want = "set" if story.overdue else "cleared"
        found.append(f"users.past_due_since is {since}, expected {want} ({story.status})")
    return found


def stored_events(conn: sa.Connection, story: Story) -> list[str]:
    ids = [e["id"] for e in story.events]
    rows = conn.execute(
        sa.select(
            webhook_events.c.id,
            webhook_events.c.type,
            webhook_events.c.status,
            webhook_events.c.attempts,
            webhook_events.c.ignored_reason,
            webhook_events.c.last_error,
        )
        .where(webhook_events.c.id.in_(ids))
        .order_by(webhook_events.c.stripe_created)
    ).all()
    stored = {row.id for row in rows}
    lines = []
    for r in rows:
        note = r.ignored_reason or r.last_error
        lines.append(
            f"  {r.id} {r.type}: {r.status} after {r.attempts} attempt(s)"
            + (f": {note[:160]}" if note else "")
        )
    return lines + [f"  {one}: never stored" for one in ids if one not in stored]


def violations(database_url: str, stories: list[Story], book: Any) -> tuple[list[str], list[str]]:
    """Every broken promise of a round, and the evidence for each broken story."""
    engine = make_engine(database_url)
    found, evidence = [], []
    try:
        with engine.connect() as conn:
            for story in stories:
                wrong = story_violations(conn, story, book.acked)
                if wrong:
                    found += [f"{story.sub_id} ({story.kind}): {line}" for line in wrong]
                    evidence.append(f"{story.describe()}")
                    evidence.append(f"  answered in this order: {book.answered(story)}")
                    evidence += stored_events(conn, story)
    finally:
        engine.dispose()
    return found, evidence
