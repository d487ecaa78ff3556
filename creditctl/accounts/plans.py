"""Plans: declared in the config, loaded into the database, consulted for credits and features."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.clock import utcnow
from creditctl.config.settings import PlanSpec
from creditctl.db.engine import read, write
from creditctl.db.tables import plans
from creditctl.errors import FeatureNotInPlan, InvalidInput
from creditctl.ledger.lookup import user_state
from creditctl.ledger.policy import Policy


@dataclass(frozen=True)
class Initialised:
    """What `init` did: the schema revision before and after, and each plan's change."""

    revision_before: str | None
    revision: str | None
    plans: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return {
            "revision_before": self.revision_before,
            "revision": self.revision,
            "plans": self.plans,
        }


def init_database(
    engine: Engine, specs: Mapping[str, PlanSpec], now: datetime | None = None
) -> Initialised:
    """Create or upgrade the schema, then make the plans table match the config."""
    # Alembic is loaded for init alone, not by every command that reads a plan.
    from creditctl.db.migrate import upgrade

    before, after = upgrade(engine)
    return Initialised(before, after, load_plans(engine, specs, now))


def load_plans(
    engine: Engine, specs: Mapping[str, PlanSpec], now: datetime | None = None
) -> dict[str, str]:
    """Make the plans table match the config; returns each plan's change (added/updated/same)."""
    now = now or utcnow()
    changes: dict[str, str] = {}
    with write(engine) as conn:
        existing = {row.name: row for row in conn.execute(sa.select(plans)).all()}
        for spec in specs.values():
            values = _columns(spec)
            row = existing.get(spec.name)
            if row is None:
                conn.execute(plans.insert().values(**values, updated_at=now))
                changes[spec.name] = "added"
            elif any(getattr(row, k) != v for k, v in values.items()):
                conn.execute(
                    plans.update().where(plans.c.name == spec.name).values(**values, updated_at=now)
                )
                changes[spec.name] = "updated"
            else:
                changes[spec.name] = "unchanged"
    return changes


def _columns(spec: PlanSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "display_name": spec.display_name,
        "credits": spec.credits,
        "features": list(spec.features),
        "amount": spec.amount,
        "currency": spec.currency,
        "interval": spec.interval,
        "lookup_key": spec.lookup_key,
        "rollover": spec.rollover,
    }


def get_plan(conn: Connection, name: str) -> Row:
    row = conn.execute(sa.select(plans).where(plans.c.name == name)).first()
    if row is None:
        known = (
            ", ".join(conn.execute(sa.select(plans.c.name).order_by(plans.c.name)).scalars().all())
            or "none; run `creditctl init`"
        )
        raise InvalidInput(f"unknown plan {name!r}; known plans: {known}")
    return row


def plan_dict(row: Row) -> dict[str, Any]:
    return {
        "name": row.name,
        "display_name": row.display_name,
        "credits": "unlimited" if row.credits is None else row.credits,
        "features": list(row.features),
        "amount": row.amount,
        "currency": row.currency,
        "interval": row.interval,
        "lookup_key": row.lookup_key,
        "stripe_product_id": row.stripe_product_id,
        "stripe_price_id": row.stripe_price_id,
    }


def list_plans(engine: Engine) -> list[dict[str, Any]]:
    with read(engine) as conn:
        rows = conn.execute(sa.select(plans).order_by(plans.c.amount, plans.c.name)).all()
    return [plan_dict(row) for row in rows]


def has_feature(features: list[str], feature: str) -> bool:
    return "*" in features or feature in features


def check_feature(engine: Engine, user: str, feature: str, policy: Policy) -> dict[str, Any]:
    """Whether the user's plan includes `feature`; refuses with FeatureNotInPlan if not."""
    with read(engine) as conn:
        state = user_state(conn, user)
        plan = get_plan(conn, state.plan)
    if not has_feature(list(plan.features), feature):
        raise FeatureNotInPlan(
            f"feature {feature!r} is not in plan {plan.name!r}; {policy.hint(user)}",
            plan=plan.name,
            feature=feature,
        )
    return {"user_id": state.id, "plan": plan.name, "feature": feature, "allowed": True}
