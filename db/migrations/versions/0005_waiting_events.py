"""webhook events that wait (deferred, unmapped) as data; subscriptions' payment news order

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 09:00:00.000000

A deferred invoice used to be `ignored` with a "deferred: " prefix in its reason; it becomes
status `deferred` with the subscription it waits for in `waiting_for`. An event ignored
because it mapped to no user becomes `unmapped`, waiting for its Stripe customer to be
linked, so the retry job re-runs it once a checkout or a customer link maps it.
"""

import json
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = ("pending", "processed", "failed", "ignored")
NEW_STATUSES = (*OLD_STATUSES, "deferred", "unmapped")
PREFIX = "deferred: "
WAITS_FOR_SUBSCRIPTION = re.compile(r"until subscription (\S+) is recorded")
NO_USER = ("maps to no user", "names no known user")

events = sa.table(
    "webhook_events",
    sa.column("id", sa.String),
    sa.column("payload", sa.Text),
    sa.column("status", sa.String),
    sa.column("ignored_reason", sa.String),
    sa.column("waiting_for", sa.String),
)


def _status_check(statuses: tuple[str, ...]) -> str:
    return f"status IN ({', '.join(repr(s) for s in statuses)})"


def _set_statuses(statuses: tuple[str, ...]) -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_webhook_events_status_known"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_webhook_events_status_known"), _status_check(statuses)
        )


def upgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waiting_for", sa.String(length=255), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_webhook_events_status_waiting_for"),
            ["status", "waiting_for"],
            unique=False,
        )
    _set_statuses(NEW_STATUSES)
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_payment_created", UTCDateTime(), nullable=True))
    # Payment news so far came with the recorded state: no older payment news may override it.
    op.execute("UPDATE subscriptions SET last_payment_created = last_event_created")
    _mark_waiting(op.get_bind())


def _customer_of(payload: str) -> str | None:
    try:
        customer = json.loads(payload)["data"]["object"].get("customer")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if isinstance(customer, dict):
        customer = customer.get("id")
    return customer if isinstance(customer, str) and customer else None


def _mark_waiting(conn: sa.Connection) -> None:
    ignored = conn.execute(
        sa.select(events.c.id, events.c.payload, events.c.ignored_reason).where(
            events.c.status == "ignored"
        )
    ).all()
    for row in ignored:
        reason = row.ignored_reason or ""
        found = WAITS_FOR_SUBSCRIPTION.search(reason)
        if reason.startswith(PREFIX) and found:
            values = {
                "status": "deferred",
                "waiting_for": found.group(1),
                "ignored_reason": reason[len(PREFIX) :],
            }
        elif any(words in reason for words in NO_USER) and _customer_of(row.payload):
            values = {"status": "unmapped", "waiting_for": _customer_of(row.payload)}
        else:
            continue
        conn.execute(events.update().where(events.c.id == row.id).values(**values))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(
        events.update()
        .where(events.c.status == "deferred")
        .values(
            status="ignored", ignored_reason=PREFIX + sa.func.coalesce(events.c.ignored_reason, "")
        )
    )
    conn.execute(events.update().where(events.c.status == "unmapped").values(status="ignored"))
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("last_payment_created")
    _set_statuses(OLD_STATUSES)
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_events_status_waiting_for"))
        batch_op.drop_column("waiting_for")
