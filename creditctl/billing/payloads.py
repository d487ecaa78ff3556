"""Reading Stripe event payloads of both API generations.

Before 2025-03-31 an invoice named its subscription at `subscription`, its metadata
snapshot at `subscription_details.metadata`, and a line's price at `line.price` or
`line.plan`; from basil on they sit under `parent.subscription_details` and
`line.pricing.price_details.price`. A subscription's period moved from the subscription to
its items (`from_stripe`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def obj_id(value: Any) -> str | None:
    """The id of an expanded object, or the id string itself."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def when(value: Any) -> datetime | None:
    return None if value in (None, "") else datetime.fromtimestamp(int(value), UTC)


def _dig(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def metadata_user(obj: Any) -> str | None:
    """`metadata.creditctl_user_id` of an expanded object."""
    return _dig(obj, "metadata", "creditctl_user_id") or None


def invoice_lines(invoice: Obj) -> list[Obj]:
    return list(_dig(invoice, "lines", "data") or [])


def _line_subscription(line: Obj) -> str | None:
    return obj_id(line.get("subscription")) or obj_id(
        _dig(line, "parent", "subscription_item_details", "subscription")
    )


def invoice_subscription_id(invoice: Obj) -> str | None:
    """The invoice's subscription: `subscription` (old) or `parent.subscription_details` (basil)."""
    found = obj_id(invoice.get("subscription")) or obj_id(
        _dig(invoice, "parent", "subscription_details", "subscription")
    )
    if found:
        return found
    return next((s for s in map(_line_subscription, invoice_lines(invoice)) if s), None)


def invoice_metadata(invoice: Obj) -> dict[str, Any]:
    """The subscription's metadata snapshot on the invoice, in either place."""
    return (
        _dig(invoice, "parent", "subscription_details", "metadata")
        or _dig(invoice, "subscription_details", "metadata")
        or _dig(invoice, "subscription", "metadata")
        or {}
    )


def _is_proration(line: Obj) -> bool:
    return bool(
        line.get("proration") or _dig(line, "parent", "subscription_item_details", "proration")
    )


def _is_subscription_line(line: Obj) -> bool:
    return (
        line.get("type") == "subscription"
        or _dig(line, "parent", "type") == "subscription_item_details"
    )


def line_price(line: Obj | None) -> Any:
    """A line's price: an expanded price or legacy plan (old), or a price id (basil)."""
    if not line:
        return None
    return line.get("price") or line.get("plan") or _dig(line, "pricing", "price_details", "price")


def subscription_line(invoice: Obj) -> Obj | None:
    """The line that bills the subscription's period: not a proration, when there is one."""
    lines = [line for line in invoice_lines(invoice) if line_price(line)]
    for wanted in (
        lambda ln: _is_subscription_line(ln) and not _is_proration(ln),
        lambda ln: not _is_proration(ln),
        lambda ln: True,
    ):
        found = [line for line in lines if wanted(line)]
        if found:
            return found[-1]
    return None


def invoice_period(invoice: Obj, line: Obj | None) -> tuple[datetime | None, datetime | None]:
    """The billed period: the subscription line's, else the invoice's own."""
    period = (line or {}).get("period") or {}
    start = when(period.get("start")) or when(invoice.get("period_start"))
    end = when(period.get("end")) or when(invoice.get("period_end"))
    return start, end


def invoice_is_paid(invoice: Obj) -> bool:
    """`paid` (old) or `status == "paid"` (basil)."""
    return bool(invoice.get("paid")) or invoice.get("status") == "paid"


def subscription_item_price(subscription: Obj) -> Any:
    item = (_dig(subscription, "items", "data") or [{}])[0]
    return item.get("price") or item.get("plan")


def price_fields(price: Any) -> tuple[str | None, str | None, str | None, Any]:
    """(id, lookup key, metadata.plan, product) of a price, a legacy plan, or a bare id."""
    if not isinstance(price, dict):
        return obj_id(price), None, None, None
    return (
        price.get("id"),
        price.get("lookup_key"),
        _dig(price, "metadata", "plan"),
        price.get("product"),
    )


def from_stripe(subscription: Obj) -> dict[str, Any]:
    """The fields creditctl keeps from a Stripe subscription, for old and current API shapes.

    Before 2025-03-31 the period sat on the subscription; since then it is on its items.
    A legacy `plan` on the item stands in for its price.
    """
    item = (_dig(subscription, "items", "data") or [{}])[0]
    price_id, lookup_key, price_plan, _ = price_fields(subscription_item_price(subscription))
    return {
        "subscription_id": subscription["id"],
        "customer_id": obj_id(subscription.get("customer")),
        "status": subscription.get("status"),
        "item_id": item.get("id"),
        "price_id": price_id,
        "lookup_key": lookup_key,
        "price_plan": price_plan,
        "period_start": when(
            item.get("current_period_start") or subscription.get("current_period_start")
        ),
        "period_end": when(
            item.get("current_period_end") or subscription.get("current_period_end")
        ),
        "cancel_at_period_end": bool(subscription.get("cancel_at_period_end")),
        "created": when(subscription.get("created")),
        "user_id_metadata": (subscription.get("metadata") or {}).get("creditctl_user_id"),
    }
