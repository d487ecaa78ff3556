"""Seeded subscription stories for the fault suite: Stripe events and what they must leave.

A story is one user's subscription told as the Stripe events it produces, in either API
generation, with strictly increasing `created` times, and the state those events must
leave once every one of them is handled in any order: whether the current period is paid
(so granted exactly once) or not (so granted nothing), the subscription's final status
(the newest event's), and whether the user is overdue (`users.past_due_since` set).
Everything is drawn from one `random.Random`, so a round's seed rebuilds the same stories.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from webhook_helpers import GENERATIONS, event, invoice, price, subscription
from webhook_support import PRO_PRICE

OVERDUE = frozenset({"past_due", "unpaid"})
# What the default plans give a period: the synced price is pro's, the dashboard one pro_plus's
# (known here only by its lookup key, which a current-generation invoice line does not carry).
PRICE_MODES = {"synced": ("pro", 1000), "dashboard": ("pro_plus", 5000)}
KINDS = ("paid", "lapsed", "recovered", "unpaid", "waiting", "canceled")


@dataclass
class Story:
    """One user's subscription: its events and what they must leave."""

    key: str  # unique in the round: names the user, customer, subscription and prices
    kind: str
    gen: str
    price_mode: str
    start: datetime
    end: datetime
    events: list[dict[str, Any]] = field(default_factory=list)
    paid: bool = False
    status: str = "active"

    @property
    def user_id(self) -> str:
        return f"u_{self.key}"

    @property
    def sub_id(self) -> str:
        return f"sub_{self.key}"

    @property
    def customer(self) -> str:
        return f"cus_{self.key}"

    @property
    def plan(self) -> str:
        return PRICE_MODES[self.price_mode][0]

    @property
    def credits(self) -> int:
        return PRICE_MODES[self.price_mode][1]

    @property
    def overdue(self) -> bool:
        return self.status in OVERDUE

    def describe(self) -> str:
        kinds = " -> ".join(_label(e) for e in self.events)
        return f"{self.sub_id} {self.kind}/{self.gen}/{self.price_mode}: {kinds}"


def _label(evt: dict[str, Any]) -> str:
    obj = evt["data"]["object"]
    short = evt["type"].replace("customer.subscription.", "sub.")
    return f"{short}({obj.get('status')}@{evt['created'] % 100000})"


class _Teller:
    """Appends a story's events, each created a few seconds after the one before."""

    def __init__(self, story: Story, rng: random.Random, created: datetime) -> None:
        self.story, self.rng, self.created = story, rng, created
        if story.price_mode == "synced":
            self.price = price(PRO_PRICE)
        else:
            self.price = price(f"price_{story.key}", lookup_key="creditctl_pro_plus")
        self.invoices = 0

    def _tick(self) -> datetime:
        self.created += timedelta(seconds=self.rng.randint(2, 9))
        return self.created

    def subscription(self, status: str, event_type: str | None = None, **fields: Any) -> None:
        s = self.story
        obj = subscription(
            s.gen,
            sub_id=s.sub_id,
            customer=s.customer,
            price_obj=self.price,
            start=s.start,
            end=s.end,
            status=status,
            user_id=s.user_id,
            **fields,
        )
        kind = event_type or ("created" if not s.events else "updated")
        self._append(f"customer.subscription.{kind}", obj)

    def invoice(self, outcome: str, inv_id: str | None = None) -> str:
        """One invoice event for the period; `outcome` paid, succeeded or failed."""
        s = self.story
        if inv_id is None:
            self.invoices += 1
            inv_id = f"in_{s.key}_{self.invoices}"
        obj = invoice(
            s.gen,
            sub_id=s.sub_id,
            customer=s.customer,
            price_id=self.price["id"],
            start=s.start,
            end=s.end,
            billing_reason="subscription_create" if self.invoices == 1 else "subscription_cycle",
            user_id=s.user_id,
            status="open" if outcome == "failed" else "paid",
            inv_id=inv_id,
            price_obj=self.price,
        )
        name = {"paid": "paid", "succeeded": "payment_succeeded", "failed": "payment_failed"}
        self._append(f"invoice.{name[outcome]}", obj)
        return inv_id

    def pay(self) -> None:
        """invoice.paid and/or invoice.payment_succeeded for one new invoice."""
        which = self.rng.choice((("paid",), ("succeeded",), ("paid", "succeeded")))
        inv_id = None
        for outcome in which:
            inv_id = self.invoice(outcome, inv_id)
        self.story.paid = True

    def _append(self, event_type: str, obj: dict[str, Any]) -> None:
        s = self.story
        event_id = f"evt_{s.key}_{len(s.events) + 1}"
        s.events.append(event(event_type, obj, created=self._tick(), gen=s.gen, event_id=event_id))
        s.status = _final_status(event_type, obj, s.status)


def _final_status(event_type: str, obj: dict[str, Any], before: str) -> str:
    """The subscription status an event says, as the handlers record it."""
    if event_type.startswith("customer.subscription."):
        if event_type.endswith(".deleted") and obj["status"] not in ("canceled",):
            return "canceled"
        return obj["status"]
    if event_type == "invoice.payment_failed":
        return "past_due"
    return before  # a paid invoice says nothing newer about the subscription's state


def tell(
    rng: random.Random, key: str, kind: str, now: datetime, gen: str, price_mode: str
) -> Story:
    """A story of `kind` in one generation and price mode, its period running now."""
    start = now - timedelta(days=1, seconds=rng.randint(0, 3600))
    story = Story(key, kind, gen, price_mode, start=start, end=start + timedelta(days=30))
    teller = _Teller(story, rng, now - timedelta(minutes=30))
    if kind == "unpaid":
        teller.subscription("incomplete")
        teller.invoice("failed")
        ending = rng.choice((None, "incomplete_expired", "deleted"))
        if ending == "incomplete_expired":
            teller.subscription("incomplete_expired")
        elif ending == "deleted":
            teller.subscription("canceled", "deleted")
        return story
    if kind == "waiting":  # active, its first invoice not paid (or not sent) yet
        teller.subscription("active")
        if rng.random() < 0.5:
            teller.subscription("active", cancel_at_period_end=True)
        return story
    first = rng.choice(("incomplete", "active"))
    teller.subscription(first)
    teller.pay()
    if first == "incomplete":
        teller.subscription("active")
    if kind in ("lapsed", "recovered"):
        teller.invoice("failed")
        if kind == "recovered" or rng.random() < 0.7:
            teller.subscription("past_due")
    if kind == "recovered":
        teller.pay()
        teller.subscription("active")
    if kind == "canceled":  # canceled at once after paying: the paid period stays granted
        teller.subscription("canceled", "deleted")
    return story


def round_stories(rng: random.Random, round_key: str, count: int, now: datetime) -> list[Story]:
    """`count` stories: every kind before any repeats, both generations and price modes.

    The first and third (paid, recovered) are in the current generation for a dashboard
    price: their invoices name the price by id only, so they must wait for the subscription
    when they come first. The second and fourth are in the old generation.
    """
    kinds = list(KINDS) + [rng.choice(KINDS) for _ in range(max(0, count - len(KINDS)))]
    shapes = [("basil", "dashboard"), ("legacy", rng.choice(tuple(PRICE_MODES)))] * 2
    shapes += [(rng.choice(GENERATIONS), rng.choice(tuple(PRICE_MODES))) for _ in kinds]
    return [tell(rng, f"{round_key}{i:02d}", kinds[i], now, *shapes[i]) for i in range(count)]
