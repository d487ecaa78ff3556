"""A round's random choices, drawn from its seed before anything runs.

The order and copies of the deliveries, the replica each goes to, and every fault: a
SIGKILL of the replica a delivery went to, or (PostgreSQL) the termination of the
replicas' backends, either a moment after the delivery is sent or a moment after its
event is committed as processed; and retry jobs started beside the daemons.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from fault_stories import Story

PAID = ("invoice.paid", "invoice.payment_succeeded")


@dataclass(frozen=True)
class Fault:
    action: str  # kill (the replica the delivery went to) | terminate (backends)
    after: str  # sent (the delivery) | committed (its event, seen processed in the database)
    delay: float  # seconds after that
    only_one: bool = False  # terminate: one backend, else all of this database's

    def describe(self) -> str:
        return f"{self.action} {self.delay * 1000:.0f} ms after {self.after}"


@dataclass
class FaultPlan:
    replicas: int
    senders: int
    order: str
    deliveries: list[tuple[dict[str, Any], int]]  # (event, replica slot)
    faults: dict[int, list[Fault]]  # delivery index -> what strikes after it
    retry_jobs: set[int]  # delivery indexes a retry job starts beside
    stripe_unreachable: bool  # a Stripe key, and nothing listening at its address

    @classmethod
    def draw(cls, rng: random.Random, stories: list[Story], backend: str) -> FaultPlan:
        replicas = rng.choice((2, 2, 3))
        order = rng.choice(("shuffled", "jittered", "bursts"))
        copies = _ordered(rng, stories, order)
        faults: dict[int, list[Fault]] = {}
        actions = ["kill"] * rng.choice((0, 1, 2, 3))
        if backend == "postgresql":
            actions += ["terminate"] * rng.choice((0, 1, 2, 3))
        # Invoices that name their price by id only wait for their subscription to be recorded.
        waiting = {s.key for s in stories if s.gen == "basil" and s.price_mode == "dashboard"}
        for action in actions:
            index, after = _point(rng, copies, waiting, taken=set(faults))
            delay = rng.uniform(0, 0.25) if after == "sent" else rng.uniform(0, 0.03)
            fault = Fault(action, after, delay, only_one=rng.random() < 0.5)
            faults.setdefault(index, []).append(fault)
        return cls(
            replicas=replicas,
            senders=rng.randint(2, 4),
            order=order,
            deliveries=[(c, rng.randrange(replicas)) for c in copies],
            faults=faults,
            retry_jobs={rng.randrange(len(copies)) for _ in range(rng.randint(0, 2))},
            stripe_unreachable=rng.random() < 0.25,
        )

    def count(self, action: str) -> int:
        return sum(f.action == action for faults in self.faults.values() for f in faults)

    def describe(self) -> str:
        return (
            f"{len(self.deliveries)} deliveries ({self.order}) to {self.replicas} replicas by "
            f"{self.senders} senders; {self.count('kill')} SIGKILL(s), "
            f"{self.count('terminate')} backend termination(s), {len(self.retry_jobs)} "
            "concurrent retry job(s), Stripe "
            + ("unreachable" if self.stripe_unreachable else "not configured")
        )


def _point(
    rng: random.Random, copies: list[dict[str, Any]], waiting: set[str], taken: set[int]
) -> tuple[int, str]:
    """Where a fault strikes: a third anywhere, a third after a subscription delivery, a
    third just after a subscription event commits that may release an invoice sent before it
    (the moment between a commit and the work it leaves for later)."""
    changes = [i for i, c in enumerate(copies) if c["type"].startswith("customer.sub")]
    releases = [i for i in _release_points(copies, waiting) if i not in taken]
    among = rng.choice(("anywhere", "change", "release"))
    if among == "release" and releases:
        return rng.choice(releases), "committed"
    if among != "anywhere" and changes:
        return rng.choice(changes), "sent"
    return rng.randrange(len(copies)), "sent"


def _ordered(rng: random.Random, stories: list[Story], order: str) -> list[dict[str, Any]]:
    """Every event once to three times, in one of the orders Stripe's deliveries arrive in."""

    def copies(story: Story) -> list[dict[str, Any]]:
        return [e for e in story.events for _ in range(rng.choices((1, 2, 3), (6, 3, 1))[0])]

    if order == "bursts":  # one story at a time, its events all at once (as Stripe sends them)
        groups = [copies(story) for story in stories]
        rng.shuffle(groups)
        for group in groups:
            rng.shuffle(group)
        return [evt for group in groups for evt in group]
    everything = [evt for story in stories for evt in copies(story)]
    if order == "shuffled":
        rng.shuffle(everything)
        return everything
    # jittered: roughly in `created` order, neighbours swapped: Stripe's usual disorder
    noisy = [(c["created"] + rng.gauss(0, 12), i) for i, c in enumerate(everything)]
    return [everything[i] for _, i in sorted(noisy)]


def _release_points(copies: list[dict[str, Any]], waiting: set[str]) -> list[int]:
    """Subscription deliveries after a waiting paid invoice of theirs: they may release it."""
    paid: set[str] = set()
    points = []
    for index, evt in enumerate(copies):
        story = evt["id"].removeprefix("evt_").rsplit("_", 1)[0]
        if story not in waiting:
            continue
        if evt["type"] in PAID:
            paid.add(story)
        elif evt["type"].startswith("customer.subscription.") and story in paid:
            points.append(index)
    return points
