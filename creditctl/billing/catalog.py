"""The plan catalogue in Stripe: products and prices by lookup key, drift, and sync."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row

from creditctl.accounts.plans import load_plans
from creditctl.billing.gateway import Gateway
from creditctl.billing.payloads import obj_id
from creditctl.billing.request_keys import stripe_write
from creditctl.clock import utcnow
from creditctl.config.settings import PlanSpec
from creditctl.db.engine import read, write
from creditctl.db.tables import plans

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
        return {
            "name": self.spec.display_name,
            "active": True,
            "metadata": plan_metadata(self.spec),
        }

    def price_params(self, product_id: str) -> dict[str, Any]:
        return {
            "product": product_id,
            "unit_amount": self.spec.amount,
            "currency": self.spec.currency,
            "recurring": {"interval": self.spec.interval},
            "lookup_key": self.spec.lookup_key,
            "metadata": plan_metadata(self.spec),
        }


def plan_metadata(spec: PlanSpec) -> dict[str, str]:
    return {
        "plan": spec.name,
        "credits": "unlimited" if spec.credits is None else str(spec.credits),
    }


def product_id_for(spec: PlanSpec) -> str:
    """A fixed product id, so a product made by a crashed sync is found, not made again."""
    return f"creditctl_{spec.name}"


def _remote_plans(
    engine: Engine, gateway: Gateway, specs: Mapping[str, PlanSpec]
) -> list[PlanRemote]:
    with read(engine) as conn:
        rows = {row.name: row for row in conn.execute(sa.select(plans)).all()}
    sold = [spec for spec in specs.values() if spec.amount > 0]
    prices = {
        p.get("lookup_key"): p
        for p in gateway.prices_by_lookup_key([spec.lookup_key for spec in sold])
    }
    remote = []
    for spec in specs.values():
        row, price = rows.get(spec.name), prices.get(spec.lookup_key)
        product = _find_product(gateway, spec, row, price) if spec.amount > 0 else None
        remote.append(PlanRemote(spec, row, product, price))
    return remote


def _find_product(
    gateway: Gateway, spec: PlanSpec, row: Row | None, price: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The plan's product: its price's, else the one recorded locally, else our fixed id."""
    candidates = (
        obj_id(price.get("product")) if price else None,
        row.stripe_product_id if row else None,
        product_id_for(spec),
    )
    for product_id in dict.fromkeys(c for c in candidates if c):
        product = gateway.product(product_id)
        if product is not None:
            return product
    return None


def plan_differences(plan: PlanRemote) -> list[dict[str, Any]]:
    """What would change in Stripe and locally to bring this plan into step."""
    spec, changes = plan.spec, []

    def change(obj: str, action: str, detail: str, stripe_id: str | None = None) -> None:
        changes.append(
            {
                "plan": spec.name,
                "object": obj,
                "action": action,
                "detail": detail,
                "stripe_id": stripe_id,
            }
        )

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
        change(
            "price",
            "create",
            f"{spec.amount} {spec.currency}/{spec.interval} lookup_key={spec.lookup_key}",
        )
    else:
        replace = _price_drift(price, spec)
        if replace:
            change(
                "price",
                "replace",
                f"{replace}; new price takes lookup_key {spec.lookup_key}, old one archived",
                price["id"],
            )
        else:
            detail = _field_drift(price, {"active": True, "metadata": plan_metadata(spec)})
            if detail:
                change("price", "update", detail, price["id"])
    have = (plan.row.stripe_product_id, plan.row.stripe_price_id) if plan.row else (None, None)
    found = (product["id"] if product else None, price["id"] if price else None)
    if changes or have != found:
        change(
            "local",
            "record",
            f"plan row ids {have[0] or '-'} / {have[1] or '-'} are "
            "set to the synced product and price",
        )
    return changes


def _price_drift(price: dict[str, Any], spec: PlanSpec) -> str:
    """The fields a price cannot change in place: amount, currency, interval."""
    recurring = price.get("recurring") or {}
    drift = []
    for name, have, want in (
        ("unit_amount", price.get("unit_amount"), spec.amount),
        ("currency", price.get("currency"), spec.currency),
        ("interval", recurring.get("interval"), spec.interval),
        ("interval_count", recurring.get("interval_count") or 1, 1),
    ):
        if have != want:
            drift.append(f"{name} {have} -> {want}")
    return ", ".join(drift)


def _field_drift(obj: dict[str, Any], want: dict[str, Any]) -> str:
    """Differences in editable fields; only our own metadata keys are compared."""
    drift = []
    for name, value in want.items():
        if name == "metadata":
            have = obj.get("metadata") or {}
            drift += [
                f"metadata.{k} {have.get(k)!r} -> {v!r}"
                for k, v in value.items()
                if have.get(k) != v
            ]
        elif obj.get(name) != value:
            drift.append(f"{name} {obj.get(name)!r} -> {value!r}")
    return ", ".join(drift)


def sync_plans(
    engine: Engine, gateway: Gateway, specs: Mapping[str, PlanSpec], *, dry_run: bool
) -> list[dict[str, Any]]:
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
        product = stripe_write(engine, "product.create", spec.name, params, gateway.create_product)
    elif _field_drift(product, plan.product_params()):
        product = _update_product(engine, gateway, product["id"], plan.product_params())
    if price is None:
        price = stripe_write(
            engine,
            "price.create",
            spec.name,
            plan.price_params(product["id"]),
            gateway.create_price,
        )
    elif _price_drift(price, spec):
        price = _replace_price(engine, gateway, plan, product, price)
    elif _field_drift(price, {"active": True, "metadata": plan_metadata(spec)}):
        price = _update_price(
            engine, gateway, price["id"], {"active": True, "metadata": plan_metadata(spec)}
        )
    _record_plan_ids(engine, spec.name, product["id"], price["id"])


def _replace_price(
    engine: Engine, gateway: Gateway, plan: PlanRemote, product: dict[str, Any], old: dict[str, Any]
) -> dict[str, Any]:
    """A new price takes the lookup key; the old one is archived, never edited in place."""
    params = {**plan.price_params(product["id"]), "transfer_lookup_key": True}
    new = stripe_write(engine, "price.create", plan.spec.name, params, gateway.create_price)
    if product.get("default_price") == old["id"]:
        _update_product(engine, gateway, product["id"], {"default_price": new["id"]})
    if old.get("active", True):
        _update_price(engine, gateway, old["id"], {"active": False})
    return new


def _update_product(
    engine: Engine, gateway: Gateway, product_id: str, params: dict[str, Any]
) -> dict[str, Any]:
    return stripe_write(
        engine,
        "product.update",
        product_id,
        params,
        lambda p, key: gateway.update_product(product_id, p, key),
    )


def _update_price(
    engine: Engine, gateway: Gateway, price_id: str, params: dict[str, Any]
) -> dict[str, Any]:
    return stripe_write(
        engine,
        "price.update",
        price_id,
        params,
        lambda p, key: gateway.update_price(price_id, p, key),
    )


def _record_plan_ids(engine: Engine, plan: str, product_id: str, price_id: str) -> None:
    with write(engine) as conn:
        conn.execute(
            plans.update()
            .where(plans.c.name == plan)
            .values(stripe_product_id=product_id, stripe_price_id=price_id, updated_at=utcnow())
        )


def plans_overview(
    engine: Engine, gateway: Gateway | None, specs: Mapping[str, PlanSpec]
) -> list[dict[str, Any]]:
    """Each plan locally and, with a gateway, in Stripe, with its drift."""
    from creditctl.accounts.plans import list_plans

    local = list_plans(engine)
    if gateway is None:
        return local
    remote = {plan.spec.name: plan for plan in _remote_plans(engine, gateway, specs)}
    for row in local:
        plan = remote.get(row["name"])
        price = plan.price if plan else None
        row.update(
            {
                "stripe_side_price_id": price["id"] if price else None,
                "stripe_side_amount": price.get("unit_amount") if price else None,
                "stripe_side_interval": (price.get("recurring") or {}).get("interval")
                if price
                else None,
                "stripe_side_active": price.get("active") if price else None,
                "drift": _drift_text(plan),
            }
        )
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
