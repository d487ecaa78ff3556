"""Stripe customers: one per user, found or created once, linked both ways."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.billing.gateway import Gateway
from creditctl.billing.request_keys import drop_key, stripe_write
from creditctl.db.engine import read
from creditctl.db.tables import users
from creditctl.errors import Conflict
from creditctl.ledger.lookup import user_state
from creditctl.ledger.transactions import run_write

USER_METADATA = "creditctl_user_id"


# --- customers ---------------------------------------------------------------------------------


def user_row(conn: Connection, user: str) -> Row:
    return conn.execute(sa.select(users).where(users.c.id == user_state(conn, user).id)).one()


def _matching_customer(gateway: Gateway, row: Row) -> dict[str, Any] | None:
    """A Stripe customer made for this user earlier: same email and creditctl_user_id."""
    for customer in gateway.customers_by_email(row.email):
        if (customer.get("metadata") or {}).get(USER_METADATA) == row.id:
            return customer
    return None


def ensure_customer(engine: Engine, gateway: Gateway, user: str) -> dict[str, Any]:
    """The user's Stripe customer: the stored one, a matching one, or a new one."""
    with read(engine) as conn:
        row = user_row(conn, user)
    if row.stripe_customer_id:
        return {"user_id": row.id, "customer_id": row.stripe_customer_id, "action": "stored"}
    customer, action = _matching_customer(gateway, row), "reused"
    if customer is not None:  # an earlier try made it; its unanswered key is moot
        drop_key(engine, f"customer.create:{row.id}:", prefix=True)
    else:
        params = {"email": row.email, "metadata": {USER_METADATA: row.id}}
        if row.name:
            params["name"] = row.name
        customer = stripe_write(
            engine,
            "customer.create",
            row.id,
            params,
            gateway.create_customer,
            recorded=lambda conn: _stored_customer(conn, row.id),
            record=lambda conn, made: _store_customer(conn, row.id, made["id"]),
        )
        action = "stored" if customer.get("stored") else "created"
    stored = run_write(engine, lambda conn: _store_customer(conn, row.id, customer["id"]))
    return {"user_id": row.id, "customer_id": stored, "action": action}


def _stored_customer(conn: Connection, user_id: str) -> dict[str, Any] | None:
    """The customer another process recorded for this user meanwhile, if any."""
    found = conn.execute(
        sa.select(users.c.stripe_customer_id).where(users.c.id == user_id)
    ).scalar()
    return {"id": found, "stored": True} if found else None


def _store_customer(conn: Connection, user_id: str, customer_id: str) -> str:
    """Record the customer id unless another process recorded one first; returns the id kept."""
    clash = conn.execute(
        sa.select(users.c.id).where(
            users.c.stripe_customer_id == customer_id, users.c.id != user_id
        )
    ).scalar()
    if clash is not None:
        raise Conflict(f"Stripe customer {customer_id} already belongs to user {clash}")
    conn.execute(
        users.update()
        .where(users.c.id == user_id, users.c.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id)
    )
    return conn.execute(
        sa.select(users.c.stripe_customer_id).where(users.c.id == user_id)
    ).scalar_one()


def known_customer(engine: Engine, gateway: Gateway, row: Row) -> str | None:
    """The user's customer id without creating one: stored, or found by email and metadata."""
    if row.stripe_customer_id:
        return row.stripe_customer_id
    found = _matching_customer(gateway, row)
    return found["id"] if found else None
