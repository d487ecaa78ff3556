"""Stripe events for the webhook tests, built from the canonical fixtures in both API generations.

`basil` is the current shape (period on the subscription's items, an invoice's subscription at
`parent.subscription_details`, a line's price at `pricing.price_details.price`); `legacy` is
the shape before 2025-03-31 (period on the subscription, `invoice.subscription`, `line.price`).
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import stripe

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe_fixtures3.json"
SECRET = "whsec_test_0123456789abcdefSECRET"
OTHER_SECRET = "whsec_rotated_9876543210SECRET"
GENERATIONS = ("basil", "legacy")
API_VERSION = {"basil": "2026-10-28.endive", "legacy": "2024-06-20"}
_ids = itertools.count(1)


@cache
def _fixtures() -> dict[str, Any]:
    return json.loads(FIXTURES.read_text())["resources"]


def fixture(name: str) -> dict[str, Any]:
    return copy.deepcopy(_fixtures()[name])


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def next_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}{int(time.time() * 1000) % 100000:05d}"


def price(
    price_id: str,
    *,
    lookup_key: str | None = None,
    plan: str | None = None,
    product: Any = "prod_test",
) -> dict[str, Any]:
    obj = fixture("price")
    obj.update(
        id=price_id, lookup_key=lookup_key, product=product, metadata={"plan": plan} if plan else {}
    )
    return obj


def legacy_plan(
    price_id: str, *, plan: str | None = None, product: Any = "prod_test"
) -> dict[str, Any]:
    obj = fixture("plan")
    obj.update(id=price_id, product=product, metadata={"plan": plan} if plan else {})
    return obj


def subscription(
    gen: str,
    *,
    sub_id: str,
    customer: str,
    price_obj: dict[str, Any],
    start: datetime,
    end: datetime,
    status: str = "active",
    user_id: str | None = None,
    cancel_at_period_end: bool = False,
) -> dict[str, Any]:
    obj = fixture("subscription")
    item = obj["items"]["data"][0]
    item.update(price=price_obj, plan=legacy_plan(price_obj["id"]), subscription=sub_id)
    obj.update(
        id=sub_id,
        customer=customer,
        status=status,
        created=ts(start),
        cancel_at_period_end=cancel_at_period_end,
        metadata={"creditctl_user_id": user_id} if user_id else {},
    )
    if gen == "basil":
        item.update(current_period_start=ts(start), current_period_end=ts(end))
        obj.pop("current_period_start", None)
        obj.pop("current_period_end", None)
    else:
        item.pop("current_period_start", None)
        item.pop("current_period_end", None)
        obj.update(current_period_start=ts(start), current_period_end=ts(end))
    return obj


def invoice(
    gen: str,
    *,
    sub_id: str,
    customer: str,
    price_id: str,
    start: datetime,
    end: datetime,
    billing_reason: str = "subscription_create",
    user_id: str | None = None,
    status: str = "paid",
    inv_id: str | None = None,
    price_obj: dict[str, Any] | None = None,
) -> dict[str, Any]:
    obj = fixture("invoice")
    line = obj["lines"]["data"][0]
    metadata = {"creditctl_user_id": user_id} if user_id else {}
    obj.update(
        id=inv_id or next_id("in"),
        customer=customer,
        billing_reason=billing_reason,
        status=status,
        period_start=ts(start),
        period_end=ts(start),
    )
    line.update(period={"start": ts(start), "end": ts(end)}, subscription=None)
    if gen == "basil":
        obj["parent"] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"subscription": sub_id, "metadata": metadata},
        }
        obj["subscription"] = None
        line["parent"] = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "subscription": sub_id,
                "subscription_item": "si_1",
                "proration": False,
                "invoice_item": None,
                "proration_details": None,
            },
        }
        line["pricing"] = {
            "type": "price_details",
            "unit_amount_decimal": "1900",
            "price_details": {"price": price_id, "product": "prod_test"},
        }
    else:
        obj.pop("parent", None)
        obj.update(
            subscription=sub_id, paid=status == "paid", subscription_details={"metadata": metadata}
        )
        for key in ("parent", "pricing"):
            line.pop(key, None)
        line.update(
            type="subscription",
            proration=False,
            price=price_obj or price(price_id),
            plan=legacy_plan(price_id),
            subscription=sub_id,
        )
    return obj


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    created: datetime | int,
    gen: str = "basil",
    event_id: str | None = None,
) -> dict[str, Any]:
    evt = fixture("event")
    evt.update(
        id=event_id or next_id("evt"),
        type=event_type,
        api_version=API_VERSION[gen],
        created=created if isinstance(created, int) else ts(created),
        data={"object": obj},
    )
    return evt


def signed(
    evt: dict[str, Any] | bytes, secret: str = SECRET, timestamp: int | None = None
) -> tuple[bytes, str]:
    """The body as Stripe sends it and a real Stripe-Signature header for it."""
    body = evt if isinstance(evt, bytes) else json.dumps(evt, indent=2).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp or int(time.time())
    )
    return body, header


def period(start: datetime, months: int = 1) -> tuple[datetime, datetime]:
    return start, start + timedelta(days=30 * months)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
