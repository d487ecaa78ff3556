"""The plan catalogue in Stripe: products and prices by lookup key, drift, and sync."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row

from creditctl.accounts.plans import list_plans, load_plans
from creditctl.billing.gateway import Gateway
from creditctl.billing.payloads import obj_id
from creditctl.billing.request_keys import stripe_write
from creditctl.clock import utcnow
from creditctl.config.settings import PlanSpec
from creditctl.db.engine import read, write
from creditctl.db.tables import plans


@dataclass(frozen=True)
class PlanDifference:
    """One thing `plans sync` changes, or would change, to bring a plan into step."""

    plan: str
    target: Literal["product", "price", "local"]  # the Stripe object, or the local plan row
    action: Literal["create", "update", "replace", "record"]
    detail: str
    stripe_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "object": self.target,
            "action": self.action,
            "detail": self.detail,
            "stripe_id": self.stripe_id,
        }


@dataclass(frozen=True)
class StripeSide:
    """A plan as Stripe has it, beside the config: its price and what sync would change."""

    in_config: bool  # False: recorded here but no longer declared, so not compared
    sold: bool  # False: a free plan, renewed locally and never sold in Stripe
    price_id: str | None = None
    amount: int | None = None
    interval: str | None = None
    active: bool | None = None
    differences: tuple[PlanDifference, ...] = ()


@dataclass(frozen=True)
class PlanOverview:
    """A plan as recorded here and, when Stripe was asked, as Stripe has it."""

    local: dict[str, Any]  # the plan row as accounts.plans lists it
    stripe: StripeSide | None = None  # None: Stripe was not asked

    @property
    def name(self) -> str:
        return self.local["name"]

    @property
    def differences(self) -> tuple[PlanDifference, ...]:
        return self.stripe.differences if self.stripe else ()

    @property
    def drifting(self) -> bool:
        """Stripe or the local row differs from the config: `plans sync` would change it."""
        return bool(self.differences)

    def as_dict(self) -> dict[str, Any]:
        """The local row, then Stripe's side; the drift column is the CLI's wording of it."""
        if self.stripe is None:
            return dict(self.local)
        side = self.stripe
        return {
            **self.local,
            "stripe_side_price_id": side.price_id,
            "stripe_side_amount": side.amount,
            "stripe_side_interval": side.interval,
            "stripe_side_active": side.active,
        }


# --- plans sync ---------------------------------------------------------------------------------


@dataclass(frozen=True)
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


def plan_differences(plan: PlanRemote) -> list[PlanDifference]:
    """What would change in Stripe and locally to bring this plan into step."""
    if not plan.sold:
        return []
    spec, product, price = plan.spec, plan.product, plan.price
    changes = [*_product_differences(plan), *_price_differences(plan)]
    have = (plan.row.stripe_product_id, plan.row.stripe_price_id) if plan.row else (None, None)
    found = (product["id"] if product else None, price["id"] if price else None)
    if changes or have != found:
        changes.append(
            PlanDifference(
                spec.name,
                "local",
                "record",
                f"plan row ids {have[0] or '-'} / {have[1] or '-'} are "
                "set to the synced product and price",
            )
        )
    return changes


def _product_differences(plan: PlanRemote) -> list[PlanDifference]:
    spec, product = plan.spec, plan.product
    if product is None:
        return [
            PlanDifference(
                spec.name, "product", "create", f"{spec.display_name!r} {plan_metadata(spec)}"
            )
        ]
    detail = _field_drift(product, plan.product_params())
    return [PlanDifference(spec.name, "product", "update", detail, product["id"])] if detail else []


def _price_differences(plan: PlanRemote) -> list[PlanDifference]:
    spec, price = plan.spec, plan.price
    if price is None:
        detail = f"{spec.amount} {spec.currency}/{spec.interval} lookup_key={spec.lookup_key}"
        return [PlanDifference(spec.name, "price", "create", detail)]
    replace = _price_drift(price, spec)
    if replace:
        detail = f"{replace}; new price takes lookup_key {spec.lookup_key}, old one archived"
        return [PlanDifference(spec.name, "price", "replace", detail, price["id"])]
    detail = _field_drift(price, {"active": True, "metadata": plan_metadata(spec)})
    return [PlanDifference(spec.name, "price", "update", detail, price["id"])] if detail else []


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
) -> list[PlanDifference]:
    """Make Stripe's products and prices match the declared plans; returns the differences.

    With `dry_run`, only reads: nothing changes in Stripe or locally.
    """
    if not dry_run:
        load_plans(engine, specs)
    changes: list[PlanDifference] = []
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
) -> list[PlanOverview]:
    """Each plan locally and, with a gateway, in Stripe, with its drift."""
    local = list_plans(engine)
    if gateway is None:
        return [PlanOverview(row) for row in local]
    remote = {plan.spec.name: plan for plan in _remote_plans(engine, gateway, specs)}
    return [PlanOverview(row, _stripe_side(remote.get(row["name"]))) for row in local]


def _stripe_side(plan: PlanRemote | None) -> StripeSide:
    if plan is None:
        return StripeSide(in_config=False, sold=False)
    price = plan.price or {}
    return StripeSide(
        in_config=True,
        sold=plan.sold,
        price_id=price.get("id"),
        amount=price.get("unit_amount"),
        interval=(price.get("recurring") or {}).get("interval"),
        active=price.get("active"),
        differences=tuple(plan_differences(plan)),
    )
