"""Events that wait for something to be recorded, and how they are found again.

- `deferred`: an invoice whose price only its subscription maps to a plan; `waiting_for` is
  the subscription id. It waits until the subscription is recorded with a plan (one recorded
  from a payment failure may have none yet) or has ended. The invoice decides to wait under
  its user's row lock, and the subscription's transaction releases it under the same lock,
  so one of the two always sees the other.
- `unmapped`: an event that maps to no user yet; `waiting_for` is its Stripe customer id,
  which a checkout or a customer link later ties to a user.

Released events go back to `pending` in the transaction that recorded what they waited
for, so a crash right after its commit leaves them for any retry path. The retry paths
(`webhooks replay --failed`, the daemon's retry job) also pick up every waiting event
whose wait is over however it ended (`ready`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from creditctl.billing.subscription_status import ENDED
from creditctl.db.tables import subscriptions, users, webhook_events

DEFERRED = "deferred"
UNMAPPED = "unmapped"
WAITING = (DEFERRED, UNMAPPED)

_status, _waiting_for = webhook_events.c.status, webhook_events.c.waiting_for
# A subscription a deferred invoice no longer waits for: its plan is known, or it is over.
_settled = sa.or_(subscriptions.c.plan.is_not(None), subscriptions.c.status.in_(ENDED))


def release(conn: Connection, user_id: str) -> list[str]:
    """Put back to pending the events waiting for the user's subscriptions or customer."""
    own_subscriptions = sa.select(subscriptions.c.stripe_subscription_id).where(
        subscriptions.c.user_id == user_id, _settled
    )
    own_customer = sa.select(users.c.stripe_customer_id).where(users.c.id == user_id)
    waiting = (
        sa.select(webhook_events.c.id)
        .where(
            sa.or_(
                sa.and_(_status == DEFERRED, _waiting_for.in_(own_subscriptions)),
                sa.and_(_status == UNMAPPED, _waiting_for.in_(own_customer)),
            )
        )
        # A row locked by another transaction is being re-run right now: that run decides
        # under the user's lock after this transaction commits, so it sees what we record.
        .with_for_update(skip_locked=True)
    )
    released = conn.execute(
        webhook_events.update()
        .where(webhook_events.c.id.in_(waiting.scalar_subquery()))
        .values(status="pending", waiting_for=None)
        .returning(webhook_events.c.id, webhook_events.c.stripe_created)
    ).all()
    return [row.id for row in sorted(released, key=lambda r: (r.stripe_created, r.id))]


def ready() -> sa.ColumnElement[bool]:
    """Waiting events whose wait is over: the subscription's plan is known, the customer linked."""
    recorded = sa.select(subscriptions.c.stripe_subscription_id).where(_settled)
    linked = sa.select(users.c.stripe_customer_id).where(users.c.stripe_customer_id.is_not(None))
    return sa.or_(
        sa.and_(_status == DEFERRED, _waiting_for.in_(recorded)),
        sa.and_(_status == UNMAPPED, _waiting_for.in_(linked)),
    )
