"""Checkout and billing-portal links for a user."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import Connection, Engine

from creditctl.accounts.plans import get_plan
from creditctl.billing.customers import USER_METADATA, ensure_customer, user_row
from creditctl.billing.gateway import Gateway
from creditctl.billing.request_keys import stripe_write
from creditctl.billing.subscription_status import ENDED
from creditctl.billing.subscription_views import local_subscriptions
from creditctl.db.engine import read
from creditctl.errors import Conflict, InvalidInput


@dataclass(frozen=True)
class CheckoutLink:
    """A Checkout session that starts a subscription to `plan`, and its URL for the user."""

    user_id: str
    plan: str
    customer_id: str
    session_id: str
    url: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PortalLink:
    """A billing-portal session, and its URL for the user."""

    user_id: str
    customer_id: str
    session_id: str
    url: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- checkout and portal links ------------------------------------------------------------------


def sold_price(conn: Connection, plan: str) -> str:
    row = get_plan(conn, plan)
    if row.amount == 0:
        raise InvalidInput(
            f"plan {plan!r} is free and renewed locally; there is nothing to buy in Stripe"
        )
    if not row.stripe_price_id:
        raise InvalidInput(f"plan {plan!r} has no Stripe price yet; run `creditctl plans sync`")
    return row.stripe_price_id


def _live_subscription(conn: Connection, user_id: str) -> dict[str, Any] | None:
    return next((s for s in local_subscriptions(conn, user_id) if s["status"] not in ENDED), None)


def checkout_link(
    engine: Engine, gateway: Gateway, user: str, plan: str, *, success_url: str, cancel_url: str
) -> CheckoutLink:
    """A Checkout URL that starts a subscription to `plan` for the user."""
    with read(engine) as conn:
        row = user_row(conn, user)
        price = sold_price(conn, plan)
        live = _live_subscription(conn, row.id)
    if live is not None:
        raise Conflict(
            f"user {row.id} already has subscription {live['subscription_id']} "
            f"({live['status']}, plan {live['plan']}); use `creditctl subscriptions "
            "change` instead"
        )
    customer = ensure_customer(engine, gateway, row.id).customer_id
    metadata = {USER_METADATA: row.id, "plan": plan}
    params = {
        "mode": "subscription",
        "customer": customer,
        "client_reference_id": row.id,
        "line_items": [{"price": price, "quantity": 1}],
        "subscription_data": {"metadata": metadata},
        "metadata": metadata,
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    session = stripe_write(
        engine, "checkout.create", row.id, params, gateway.create_checkout_session
    )
    return CheckoutLink(row.id, plan, customer, session["id"], session["url"])


def portal_link(engine: Engine, gateway: Gateway, user: str, *, return_url: str) -> PortalLink:
    """A billing-portal URL where the user manages payment methods and invoices."""
    customer = ensure_customer(engine, gateway, user)
    params = {"customer": customer.customer_id, "return_url": return_url}
    session = stripe_write(
        engine, "portal.create", customer.user_id, params, gateway.create_portal_session
    )
    return PortalLink(customer.user_id, customer.customer_id, session["id"], session["url"])
