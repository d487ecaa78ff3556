"""Stripe billing from the operator's side: customers, plan sync, links, subscription changes.

Every Stripe write runs under an idempotency key stored in `stripe_requests` before the
call and dropped after Stripe's answer, so a retry after a crash (or a lost answer)
reuses the key and Stripe returns the first result instead of making a second object.
All Stripe traffic goes through `creditctl.stripe_gateway`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.amounts import iso, utcnow
from creditctl.audit import record
from creditctl.errors import Conflict, InvalidInput, NotFound, StripeFailure
from creditctl.idempotency import fingerprint
from creditctl.ledger import run_write, user_state
from creditctl.plans import get_plan, load_plans
from creditctl.settings import PlanSpec
from creditctl.stripe_gateway import Gateway
from creditctl.stripe_payloads import obj_id
from creditctl.subscriptions import (
    ENDED,
    apply_stripe_subscription,
    from_stripe,
    local_subscriptions,
    plan_for_price,
    stripe_requests,
    subscriptions,
)
from creditctl.tables import plans, users
from db.engine import read, write

T = TypeVar("T")
PRORATIONS = ("create_prorations", "always_invoice", "none")
USER_METADATA = "creditctl_user_id"


# --- idempotency keys for Stripe writes ---------------------------------------------------------

def stripe_write(engine: Engine, kind: str, subject: str, params: Mapping[str, Any],
                 send: Callable[[dict[str, Any], str], T], *,
                 recorded: Callable[[Connection], T | None] | None = None,
                 record: Callable[[Connection, T], object] | None = None) -> T:
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
    if earlier is not None:
        return earlier
    try:
        result = send(dict(params), key)
    except StripeFailure as exc:
        if not exc.details.get("ambiguous"):
            _drop_key(engine, operation)
        raise
    _drop_key(engine, operation, record=(lambda conn: record(conn, result)) if record else None)
    return result


def _claim_key(engine: Engine, operation: str, kind: str,
               recorded: Callable[[Connection], Any] | None) -> tuple[str | None, Any]:
    lookup = sa.select(stripe_requests.c.idempotency_key).where(
        stripe_requests.c.operation == operation)
    for _ in range(2):
        try:
            with write(engine) as conn:
                earlier = recorded(conn) if recorded else None
                if earlier is not None:
                    return None, earlier
                key = conn.execute(lookup).scalar()
                if key is None:
                    key = f"creditctl-{kind}-{uuid.uuid4().hex}"
                    conn.execute(stripe_requests.insert().values(
                        operation=operation, idempotency_key=key, created_at=utcnow()))
                return key, None
        except sa.exc.IntegrityError:
            continue  # another process claimed the same operation first: use its key
    raise Conflict(f"could not claim an idempotency key for {operation}; try again")


def _drop_key(engine: Engine, operation: str, *, prefix: bool = False,
              record: Callable[[Connection], object] | None = None) -> None:
    match = (stripe_requests.c.operation.startswith(operation, autoescape=True) if prefix
             else stripe_requests.c.operation == operation)
    with write(engine) as conn:
        if record is not None:
            record(conn)
        conn.execute(stripe_requests.delete().where(match))


def pending_requests(engine: Engine) -> list[dict[str, Any]]:
    """Stripe writes whose answer was never recorded (a crash or a network failure)."""
    with read(engine) as conn:
        rows = conn.execute(sa.select(stripe_requests)
                            .order_by(stripe_requests.c.created_at)).all()
    return [{"operation": r.operation, "idempotency_key": r.idempotency_key,
             "created_at": iso(r.created_at)} for r in rows]


# --- customers ---------------------------------------------------------------------------------

def _user_row(conn: Connection, user: str) -> Row:
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
        row = _user_row(conn, user)
    if row.stripe_customer_id:
        return {"user_id": row.id, "customer_id": row.stripe_customer_id, "action": "stored"}
    customer, action = _matching_customer(gateway, row), "reused"
    if customer is not None:  # an earlier try made it; its unanswered key is moot
        _drop_key(engine, f"customer.create:{row.id}:", prefix=True)
    else:
        params = {"email": row.email, "metadata": {USER_METADATA: row.id}}
        if row.name:
            params["name"] = row.name
        customer = stripe_write(
            engine, "customer.create", row.id, params, gateway.create_customer,
            recorded=lambda conn: _stored_customer(conn, row.id),
            record=lambda conn, made: _store_customer(conn, row.id, made["id"]))
        action = "stored" if customer.get("stored") else "created"
    stored = run_write(engine, lambda conn: _store_customer(conn, row.id, customer["id"]))
    return {"user_id": row.id, "customer_id": stored, "action": action}


def _stored_customer(conn: Connection, user_id: str) -> dict[str, Any] | None:
    """The customer another process recorded for this user meanwhile, if any."""
    found = conn.execute(sa.select(users.c.stripe_customer_id)
                         .where(users.c.id == user_id)).scalar()
    return {"id": found, "stored": True} if found else None


def _store_customer(conn: Connection, user_id: str, customer_id: str) -> str:
    """Record the customer id unless another process recorded one first; returns the id kept."""
    clash = conn.execute(sa.select(users.c.id).where(
        users.c.stripe_customer_id == customer_id, users.c.id != user_id)).scalar()
    if clash is not None:
        raise Conflict(f"Stripe customer {customer_id} already belongs to user {clash}")
    conn.execute(users.update().where(users.c.id == user_id,
                                      users.c.stripe_customer_id.is_(None))
                 .values(stripe_customer_id=customer_id))
    return conn.execute(sa.select(users.c.stripe_customer_id)
                        .where(users.c.id == user_id)).scalar_one()


def known_customer(engine: Engine, gateway: Gateway, row: Row) -> str | None:
    """The user's customer id without creating one: stored, or found by email and metadata."""
    if row.stripe_customer_id:
        return row.stripe_customer_id
    found = _matching_customer(gateway, row)
    return found["id"] if found else None


# --- plans sync ---------------------------------------------------------------------------------

@dataclass
class PlanRemote:
    """One plan as the config wants it and as Stripe has it."""

    spec: PlanSpec
    row: Row | None
    product: dict[str, Any] | None
    price: dict[str, Any] | None

    @property
    def sold(self) -> bool:
        return self.spec.amount > 0

    def product_params(self) -> dict[str, Any]:
        return {"name": self.spec.display_name, "active": True,
                "metadata": plan_metadata(self.spec)}

    def price_params(self, product_id: str) -> dict[str, Any]:
        return {"product": product_id, "unit_amount": self.spec.amount,
                "currency": self.spec.currency, "recurring": {"interval": self.spec.interval},
                "lookup_key": self.spec.lookup_key, "metadata": plan_metadata(self.spec)}


def plan_metadata(spec: PlanSpec) -> dict[str, str]:
    return {"plan": spec.name, "credits": "unlimited" if spec.credits is None
            else str(spec.credits)}


def product_id_for(spec: PlanSpec) -> str:
    """A fixed product id, so a product made by a crashed sync is found, not made again."""
    return f"creditctl_{spec.name}"


def _remote_plans(engine: Engine, gateway: Gateway,
                  specs: Mapping[str, PlanSpec]) -> list[PlanRemote]:
    with read(engine) as conn:
        rows = {row.name: row for row in conn.execute(sa.select(plans)).all()}
    sold = [spec for spec in specs.values() if spec.amount > 0]
    prices = {p.get("lookup_key"): p for p in
              gateway.prices_by_lookup_key([spec.lookup_key for spec in sold])}
    remote = []
    for spec in specs.values():
        row, price = rows.get(spec.name), prices.get(spec.lookup_key)
        product = _find_product(gateway, spec, row, price) if spec.amount > 0 else None
        remote.append(PlanRemote(spec, row, product, price))
    return remote


def _find_product(gateway: Gateway, spec: PlanSpec, row: Row | None,
                  price: dict[str, Any] | None) -> dict[str, Any] | None:
    """The plan's product: its price's, else the one recorded locally, else our fixed id."""
    candidates = (obj_id(price.get("product")) if price else None,
                  row.stripe_product_id if row else None, product_id_for(spec))
    for product_id in dict.fromkeys(c for c in candidates if c):
        product = gateway.product(product_id)
        if product is not None:
            return product
    return None


def plan_differences(plan: PlanRemote) -> list[dict[str, Any]]:
    """What would change in Stripe and locally to bring this plan into step."""
    spec, changes = plan.spec, []

    def change(obj: str, action: str, detail: str, stripe_id: str | None = None) -> None:
        changes.append({"plan": spec.name, "object": obj, "action": action, "detail": detail,
                        "stripe_id": stripe_id})

    if not plan.sold:
        return []
    product, price = plan.product, plan.price
    if product is None:
        change("product", "create", f"{spec.display_name!r} {plan_metadata(spec)}")
    else:
        detail = _field_drift(product, plan.product_params())
        if detail:
            change("product", "update", detail, product["id"])
    if price is None:
        change("price", "create", f"{spec.amount} {spec.currency}/{spec.interval} "
                                  f"lookup_key={spec.lookup_key}")
    else:
        replace = _price_drift(price, spec)
        if replace:
            change("price", "replace", f"{replace}; new price takes lookup_key "
                                       f"{spec.lookup_key}, old one archived", price["id"])
        else:
            detail = _field_drift(price, {"active": True, "metadata": plan_metadata(spec)})
            if detail:
                change("price", "update", detail, price["id"])
    have = (plan.row.stripe_product_id, plan.row.stripe_price_id) if plan.row else (None, None)
    found = (product["id"] if product else None, price["id"] if price else None)
    if changes or have != found:
        change("local", "record", f"plan row ids {have[0] or '-'} / {have[1] or '-'} are "
                                  "set to the synced product and price")
    return changes


def _price_drift(price: dict[str, Any], spec: PlanSpec) -> str:
    """The fields a price cannot change in place: amount, currency, interval."""
    recurring = price.get("recurring") or {}
    drift = []
    for name, have, want in (("unit_amount", price.get("unit_amount"), spec.amount),
                             ("currency", price.get("currency"), spec.currency),
                             ("interval", recurring.get("interval"), spec.interval),
                             ("interval_count", recurring.get("interval_count") or 1, 1)):
        if have != want:
            drift.append(f"{name} {have} -> {want}")
    return ", ".join(drift)


def _field_drift(obj: dict[str, Any], want: dict[str, Any]) -> str:
    """Differences in editable fields; only our own metadata keys are compared."""
    drift = []
    for name, value in want.items():
        if name == "metadata":
            have = obj.get("metadata") or {}
            drift += [f"metadata.{k} {have.get(k)!r} -> {v!r}" for k, v in value.items()
                      if have.get(k) != v]
        elif obj.get(name) != value:
            drift.append(f"{name} {obj.get(name)!r} -> {value!r}")
    return ", ".join(drift)


def sync_plans(engine: Engine, gateway: Gateway, specs: Mapping[str, PlanSpec], *,
               dry_run: bool) -> list[dict[str, Any]]:
    """Make Stripe's products and prices match the declared plans; returns the differences.

    With `dry_run`, only reads: nothing changes in Stripe or locally.
    """
    if not dry_run:
        load_plans(engine, specs)
    changes = []
    for plan in _remote_plans(engine, gateway, specs):
        differences = plan_differences(plan)
        if differences and not dry_run:
            _bring_into_step(engine, gateway, plan)
        changes += differences
    return changes


def _bring_into_step(engine: Engine, gateway: Gateway, plan: PlanRemote) -> None:
    spec, product, price = plan.spec, plan.product, plan.price
    if product is None:
        params = {"id": product_id_for(spec), **plan.product_params()}
        product = stripe_write(engine, "product.create", spec.name, params,
                               gateway.create_product)
    elif _field_drift(product, plan.product_params()):
        product = _update_product(engine, gateway, product["id"], plan.product_params())
    if price is None:
        price = stripe_write(engine, "price.create", spec.name, plan.price_params(product["id"]),
                             gateway.create_price)
    elif _price_drift(price, spec):
        price = _replace_price(engine, gateway, plan, product, price)
    elif _field_drift(price, {"active": True, "metadata": plan_metadata(spec)}):
        price = _update_price(engine, gateway, price["id"],
                              {"active": True, "metadata": plan_metadata(spec)})
    _record_plan_ids(engine, spec.name, product["id"], price["id"])


def _replace_price(engine: Engine, gateway: Gateway, plan: PlanRemote, product: dict[str, Any],
                   old: dict[str, Any]) -> dict[str, Any]:
    """A new price takes the lookup key; the old one is archived, never edited in place."""
    params = {**plan.price_params(product["id"]), "transfer_lookup_key": True}
    new = stripe_write(engine, "price.create", plan.spec.name, params, gateway.create_price)
    if product.get("default_price") == old["id"]:
        _update_product(engine, gateway, product["id"], {"default_price": new["id"]})
    if old.get("active", True):
        _update_price(engine, gateway, old["id"], {"active": False})
    return new


def _update_product(engine: Engine, gateway: Gateway, product_id: str,
                    params: dict[str, Any]) -> dict[str, Any]:
    return stripe_write(engine, "product.update", product_id, params,
                        lambda p, key: gateway.update_product(product_id, p, key))


def _update_price(engine: Engine, gateway: Gateway, price_id: str,
                  params: dict[str, Any]) -> dict[str, Any]:
    return stripe_write(engine, "price.update", price_id, params,
                        lambda p, key: gateway.update_price(price_id, p, key))


def _record_plan_ids(engine: Engine, plan: str, product_id: str, price_id: str) -> None:
    with write(engine) as conn:
        conn.execute(plans.update().where(plans.c.name == plan).values(
            stripe_product_id=product_id, stripe_price_id=price_id, updated_at=utcnow()))


def plans_overview(engine: Engine, gateway: Gateway | None,
                   specs: Mapping[str, PlanSpec]) -> list[dict[str, Any]]:
    """Each plan locally and, with a gateway, in Stripe, with its drift."""
    from creditctl.plans import list_plans

    local = list_plans(engine)
    if gateway is None:
        return local
    remote = {plan.spec.name: plan for plan in _remote_plans(engine, gateway, specs)}
    for row in local:
        plan = remote.get(row["name"])
        price = plan.price if plan else None
        row.update({
            "stripe_side_price_id": price["id"] if price else None,
            "stripe_side_amount": price.get("unit_amount") if price else None,
            "stripe_side_interval": (price.get("recurring") or {}).get("interval")
            if price else None,
            "stripe_side_active": price.get("active") if price else None,
            "drift": _drift_text(plan),
        })
    return local


def _drift_text(plan: PlanRemote | None) -> str:
    if plan is None:
        return "not in config"
    if not plan.sold:
        return "local only (free plan)"
    differences = plan_differences(plan)
    if not differences:
        return "in step"
    return "DRIFT: " + "; ".join(f"{d['object']} {d['action']}" for d in differences)


# --- checkout and portal links ------------------------------------------------------------------

def _sold_price(conn: Connection, plan: str) -> str:
    row = get_plan(conn, plan)
    if row.amount == 0:
        raise InvalidInput(f"plan {plan!r} is free and renewed locally; there is nothing to "
                           "buy in Stripe")
    if not row.stripe_price_id:
        raise InvalidInput(f"plan {plan!r} has no Stripe price yet; run `creditctl plans sync`")
    return row.stripe_price_id


def _live_subscription(conn: Connection, user_id: str) -> dict[str, Any] | None:
    return next((s for s in local_subscriptions(conn, user_id) if s["status"] not in ENDED), None)


def checkout_link(engine: Engine, gateway: Gateway, user: str, plan: str, *,
                  success_url: str, cancel_url: str) -> dict[str, Any]:
    """A Checkout URL that starts a subscription to `plan` for the user."""
    with read(engine) as conn:
        row = _user_row(conn, user)
        price = _sold_price(conn, plan)
        live = _live_subscription(conn, row.id)
    if live is not None:
        raise Conflict(f"user {row.id} already has subscription {live['subscription_id']} "
                       f"({live['status']}, plan {live['plan']}); use `creditctl subscriptions "
                       "change` instead")
    customer = ensure_customer(engine, gateway, row.id)["customer_id"]
    metadata = {USER_METADATA: row.id, "plan": plan}
    params = {"mode": "subscription", "customer": customer, "client_reference_id": row.id,
              "line_items": [{"price": price, "quantity": 1}],
              "subscription_data": {"metadata": metadata}, "metadata": metadata,
              "success_url": success_url, "cancel_url": cancel_url}
    session = stripe_write(engine, "checkout.create", row.id, params,
                           gateway.create_checkout_session)
    return {"user_id": row.id, "plan": plan, "customer_id": customer,
            "session_id": session["id"], "url": session["url"]}


def portal_link(engine: Engine, gateway: Gateway, user: str, *,
                return_url: str) -> dict[str, Any]:
    """A billing-portal URL where the user manages payment methods and invoices."""
    customer = ensure_customer(engine, gateway, user)
    params = {"customer": customer["customer_id"], "return_url": return_url}
    session = stripe_write(engine, "portal.create", customer["user_id"], params,
                           gateway.create_portal_session)
    return {"user_id": customer["user_id"], "customer_id": customer["customer_id"],
            "session_id": session["id"], "url": session["url"]}


# --- subscriptions ------------------------------------------------------------------------------

def show_subscriptions(engine: Engine, gateway: Gateway | None, user: str) -> dict[str, Any]:
    """The user's subscriptions as recorded here and, with a gateway, as Stripe has them."""
    with read(engine) as conn:
        row = _user_row(conn, user)
        local = local_subscriptions(conn, row.id)
    shown: dict[str, Any] = {"user_id": row.id, "customer_id": row.stripe_customer_id,
                             "local": local}
    if gateway is not None:
        customer = known_customer(engine, gateway, row)
        remote = gateway.subscriptions_of(customer) if customer else []
        with read(engine) as conn:
            shown["remote"] = [_remote_dict(conn, sub) for sub in
                               sorted(remote, key=lambda s: s.get("created") or 0, reverse=True)]
        shown["customer_id"] = customer
    return shown


def _remote_dict(conn: Connection, subscription: dict[str, Any]) -> dict[str, Any]:
    fields = from_stripe(subscription)
    return {"subscription_id": fields["subscription_id"], "customer_id": fields["customer_id"],
            "plan": plan_for_price(conn, fields["price_id"], fields["lookup_key"],
                                   fields["price_plan"]),
            "status": fields["status"], "price_id": fields["price_id"],
            "current_period_start": iso(fields["period_start"]),
            "current_period_end": iso(fields["period_end"]),
            "cancel_at_period_end": fields["cancel_at_period_end"],
            "created": iso(fields["created"])}


def current_subscription(engine: Engine, gateway: Gateway,
                         user: str) -> tuple[Row, dict[str, Any]]:
    """The user's live subscription, fresh from Stripe: the recorded one, else the customer's."""
    with read(engine) as conn:
        row = _user_row(conn, user)
        recorded = [s["subscription_id"] for s in local_subscriptions(conn, row.id)
                    if s["status"] not in ENDED]
    for subscription_id in recorded:
        found = gateway.subscription(subscription_id)
        if found is not None and found.get("status") not in ENDED:
            return row, found
    customer = known_customer(engine, gateway, row)
    live = [s for s in (gateway.subscriptions_of(customer) if customer else [])
            if s.get("status") not in ENDED]
    if not live:
        raise NotFound(f"user {row.id} has no live Stripe subscription; start one with "
                       f"`creditctl stripe checkout {row.id} --plan PLAN`")
    return row, max(live, key=lambda s: s.get("created") or 0)


def _apply(engine: Engine, row: Row, subscription: dict[str, Any], *, actor: str,
           action: str, reason: str, ended_plan: str | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """Record what Stripe answered, apply its credit effect, and audit the operator's action."""
    now = now or utcnow()

    def operation(conn: Connection) -> dict[str, Any]:
        applied = apply_stripe_subscription(conn, subscription, user_id=row.id, actor=actor,
                                            now=now, ended_plan=ended_plan)
        record(conn, operator=actor, action=action, user_id=row.id, reason=reason, now=now,
               details={"subscription_id": applied.subscription_id,
                        "granted": applied.granted, "plan": applied.user_plan})
        current = conn.execute(sa.select(subscriptions).where(
            subscriptions.c.stripe_subscription_id == applied.subscription_id)).one()
        return {**_remote_dict(conn, subscription), "user_id": row.id,
                "granted": applied.granted, "user_plan": applied.user_plan,
                "local_status": current.status}

    return run_write(engine, operation)


def change_subscription(engine: Engine, gateway: Gateway, user: str, plan: str, *,
                        proration: str, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """Move the user's subscription to `plan`, with Stripe's proration behaviour."""
    if proration not in PRORATIONS:
        raise InvalidInput(f"proration {proration!r} is not one of {', '.join(PRORATIONS)}")
    row, subscription = current_subscription(engine, gateway, user)
    with read(engine) as conn:
        price = _sold_price(conn, plan)
    fields = from_stripe(subscription)
    if fields["price_id"] == price:
        raise Conflict(f"subscription {fields['subscription_id']} of {row.id} is already on "
                       f"plan {plan}")
    params = {"items": [{"id": fields["item_id"], "price": price}],
              "proration_behavior": proration,
              "metadata": {USER_METADATA: row.id, "plan": plan}}
    updated = stripe_write(
        engine, "subscription.change", fields["subscription_id"], params,
        lambda p, key: gateway.update_subscription(fields["subscription_id"], p, key))
    return _apply(engine, row, updated, actor=actor, action="subscription.change",
                  reason=f"change to {plan} ({proration})", now=now)


def cancel_subscription(engine: Engine, gateway: Gateway, user: str, *, now_: bool,
                        actor: str, ended_plan: str) -> dict[str, Any]:
    """Cancel at period end (the default), or at once; the user then falls to `ended_plan`."""
    row, subscription = current_subscription(engine, gateway, user)
    subscription_id = subscription["id"]
    if now_:
        subscription = stripe_write(
            engine, "subscription.cancel", subscription_id, {},
            lambda _p, key: gateway.cancel_subscription(subscription_id, key))
    elif not subscription.get("cancel_at_period_end"):
        subscription = _set_cancel_at_period_end(engine, gateway, subscription_id, True)
    return _apply(engine, row, subscription, actor=actor, action="subscription.cancel",
                  reason="cancel now" if now_ else "cancel at period end",
                  ended_plan=ended_plan)


def resume_subscription(engine: Engine, gateway: Gateway, user: str, *,
                        actor: str) -> dict[str, Any]:
    """Undo a pending cancel at period end; the subscription renews again."""
    row, subscription = current_subscription(engine, gateway, user)
    if subscription.get("status") == "canceled" or not subscription.get("cancel_at_period_end"):
        raise Conflict(f"subscription {subscription['id']} ({subscription.get('status')}) has "
                       "no pending cancel, so there is nothing to resume; a canceled "
                       "subscription is restarted with `creditctl stripe checkout`")
    subscription = _set_cancel_at_period_end(engine, gateway, subscription["id"], False)
    return _apply(engine, row, subscription, actor=actor, action="subscription.resume",
                  reason="resume: undo the pending cancel")


def _set_cancel_at_period_end(engine: Engine, gateway: Gateway, subscription_id: str,
                              value: bool) -> dict[str, Any]:
    return stripe_write(
        engine, "subscription.cancel_at_period_end", subscription_id,
        {"cancel_at_period_end": value},
        lambda p, key: gateway.update_subscription(subscription_id, p, key))
