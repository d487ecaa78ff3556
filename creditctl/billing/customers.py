"""Stripe customers: one per user, found or created once, linked both ways."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

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
Found = Literal["stored", "reused", "created"]  # stored here, matched in Stripe, or made now


@dataclass(frozen=True)
class CustomerLink:
    """The user's Stripe customer, and how it was found: stored here, reused, or created."""

    user_id: str
    customer_id: str
    action: Found

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Linked:
    """What linking a user to a Stripe customer left: the user's customer, or who holds it."""

    customer_id: str | None  # the user's customer afterwards
    holder: str | None = None  # another user linked to the asked-for customer: nothing changed


# --- customers ---------------------------------------------------------------------------------


def user_row(conn: Connection, user: str) -> Row:
    return conn.execute(sa.select(users).where(users.c.id == user_state(conn, user).id)).one()


def _matching_customer(gateway: Gateway, row: Row) -> dict[str, Any] | None:
    """A Stripe customer made for this user earlier: same email and creditctl_user_id."""
    for customer in gateway.customers_by_email(row.email):
        if (customer.get("metadata") or {}).get(USER_METADATA) == row.id:
            return customer
    return None


def ensure_customer(engine: Engine, gateway: Gateway, user: str) -> CustomerLink:
    """The user's Stripe customer: the stored one, a matching one, or a new one."""
    with read(engine) as conn:
        row = user_row(conn, user)
    if row.stripe_customer_id:
        return CustomerLink(row.id, row.stripe_customer_id, "stored")
    customer = _matching_customer(gateway, row)
    action: Found = "reused"
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
    return CustomerLink(row.id, stored, action)


def _stored_customer(conn: Connection, user_id: str) -> dict[str, Any] | None:
    """The customer another process recorded for this user meanwhile, if any."""
    found = _customer_of(conn, user_id)
    return {"id": found, "stored": True} if found else None


def _store_customer(conn: Connection, user_id: str, customer_id: str) -> str:
    """Record the customer id unless another process recorded one first; returns the id kept."""
    linked = link(conn, user_id, customer_id, replace=False)
    if linked.holder is not None:
        raise Conflict(f"Stripe customer {customer_id} already belongs to user {linked.holder}")
    assert linked.customer_id is not None  # set now, or kept from the earlier writer
    return linked.customer_id


def link(conn: Connection, user_id: str, customer_id: str, *, replace: bool) -> Linked:
    """Link the user to a Stripe customer that no other user holds.

    The user's own customer is kept unless `replace`; the update is conditional, so of two
    writers racing to link a user without one, the first one's customer stays.
    """
    holder = conn.execute(
        sa.select(users.c.id).where(
            users.c.stripe_customer_id == customer_id, users.c.id != user_id
        )
    ).scalar()
    if holder is not None:
        return Linked(_customer_of(conn, user_id), holder)
    update = users.update().where(users.c.id == user_id)
    if not replace:
        update = update.where(users.c.stripe_customer_id.is_(None))
    conn.execute(update.values(stripe_customer_id=customer_id))
    return Linked(_customer_of(conn, user_id))


def _customer_of(conn: Connection, user_id: str) -> str | None:
    return conn.execute(sa.select(users.c.stripe_customer_id).where(users.c.id == user_id)).scalar()


def known_customer(engine: Engine, gateway: Gateway, row: Row) -> str | None:
    """The user's customer id without creating one: stored, or found by email and metadata."""
    if row.stripe_customer_id:
        return row.stripe_customer_id
    found = _matching_customer(gateway, row)
    return found["id"] if found else None
