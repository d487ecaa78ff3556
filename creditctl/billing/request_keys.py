"""Idempotency keys for Stripe writes, stored before the call and dropped after Stripe's answer,
so a retry after a crash (or a lost answer) reuses the key and Stripe returns the first result
instead of making a second object.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from creditctl.clock import utcnow
from creditctl.db.engine import write
from creditctl.db.tables import stripe_requests
from creditctl.errors import Conflict, StripeFailure
from creditctl.ledger.idempotency import fingerprint

T = TypeVar("T")


# --- idempotency keys for Stripe writes ---------------------------------------------------------


def stripe_write(
    engine: Engine,
    kind: str,
    subject: str,
    params: Mapping[str, Any],
    send: Callable[[dict[str, Any], str], T],
    *,
    recorded: Callable[[Connection], T | None] | None = None,
    record: Callable[[Connection, T], object] | None = None,
) -> T:
    """Send one Stripe write under the key stored for this exact operation.

    The key outlives a crash or an unanswered request; it is dropped once Stripe has
    answered (or refused for good), so the next request of its kind gets a new one.
    `record` stores the answer here in the transaction that drops the key, and `recorded`,
    checked in the transaction that claims it, returns what an earlier writer stored: so
    a second process never sends the same creation under a fresh key.
    """
    body = json.dumps(params, sort_keys=True, default=str)
    operation = f"{kind}:{subject}:{fingerprint(body)}"[:255]
    key, earlier = _claim_key(engine, operation, kind, recorded)
    if key is None:  # an earlier writer stored the answer: no request is sent
        return earlier
    try:
        result = send(dict(params), key)
    except StripeFailure as exc:
        if not exc.details.get("ambiguous"):
            drop_key(engine, operation)
        raise
    drop_key(engine, operation, record=(lambda conn: record(conn, result)) if record else None)
    return result


def _claim_key(
    engine: Engine, operation: str, kind: str, recorded: Callable[[Connection], Any] | None
) -> tuple[str | None, Any]:
    lookup = sa.select(stripe_requests.c.idempotency_key).where(
        stripe_requests.c.operation == operation
    )
    for _ in range(2):
        try:
            with write(engine) as conn:
                earlier = recorded(conn) if recorded else None
                if earlier is not None:
                    return None, earlier
                key = conn.execute(lookup).scalar()
                if key is None:
                    key = f"creditctl-{kind}-{uuid.uuid4().hex}"
                    conn.execute(
                        stripe_requests.insert().values(
                            operation=operation, idempotency_key=key, created_at=utcnow()
                        )
                    )
                return key, None
        except sa.exc.IntegrityError:
            continue  # another process claimed the same operation first: use its key
    raise Conflict(f"could not claim an idempotency key for {operation}; try again")


def drop_key(
    engine: Engine,
    operation: str,
    *,
    prefix: bool = False,
    record: Callable[[Connection], object] | None = None,
) -> None:
    match = (
        stripe_requests.c.operation.startswith(operation, autoescape=True)
        if prefix
        else stripe_requests.c.operation == operation
    )
    with write(engine) as conn:
        if record is not None:
            record(conn)
        conn.execute(stripe_requests.delete().where(match))
