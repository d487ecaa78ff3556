"""The ledger held against a plain Python model (hypothesis stateful testing), on both databases.

The model keeps every grant (remaining, expiry) and hold (allocations per grant) and the
rules in README.md: usage draws from the soonest-expiring grant first, an expired hold
returns its credits to the grants it came from, an expired grant loses what remains, a
reversal refunds usage as a new grant or takes a grant back (from that grant first).
After every step `audit.verify` must be clean and, whenever nothing is waiting to be swept,
the cached balance, held credits and every grant's remaining must equal the model's.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from helpers import T0, new_user
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from creditctl.db.tables import entries, grants
from creditctl.errors import (
    AlreadyReversed,
    Conflict,
    HoldSettled,
    InsufficientCredits,
    InvalidInput,
)
from creditctl.ledger import balances, corrections, holds, lookup, spending
from creditctl.ledger.audit import verify

_users = itertools.count()
STEPS = [timedelta(minutes=m) for m in (1, 20, 60, 5 * 60, 24 * 60, 10 * 24 * 60, 25 * 24 * 60)]
GRANT_LIFETIMES = [
    None,
    timedelta(hours=1),
    timedelta(hours=5),
    timedelta(days=2),
    timedelta(days=20),
]
HOLD_TTLS = [timedelta(minutes=m) for m in (1, 30, 120)]


@dataclass
class ModelGrant:
    remaining: int
    expires_at: datetime | None


@dataclass
class ModelHold:
    amount: int
    expires_at: datetime
    allocations: dict[int, int]
    status: str = "open"


@dataclass
class ModelEntry:
    amount: int
    grant_id: int | None
    reversible: bool
    reversed: bool = False


@dataclass
class Model:
    now: datetime
    grants: dict[int, ModelGrant] = field(default_factory=dict)
    holds: dict[int, ModelHold] = field(default_factory=dict)

    def live(self, grant_id: int) -> bool:
        expires_at = self.grants[grant_id].expires_at
        return expires_at is None or expires_at > self.now

    @property
    def available(self) -> int:
        return sum(g.remaining for g in self.grants.values())

    @property
    def held(self) -> int:
        return sum(sum(h.allocations.values()) for h in self.holds.values() if h.status == "open")

    def settle(self) -> None:
        for hold in sorted(self.holds):
            if self.holds[hold].status == "open" and self.holds[hold].expires_at <= self.now:
                self._give_back(self.holds[hold], keep=0)
                self.holds[hold].status = "expired"
        for grant_id, grant in self.grants.items():
            if not self.live(grant_id):
                grant.remaining = 0

    def draw(self, amount: int, prefer: int | None = None) -> dict[int, int]:
        """Take `amount` from grants, soonest expiry first (`prefer` before all)."""
        order = sorted(
            (g for g, grant in self.grants.items() if grant.remaining > 0 and self.live(g)),
            key=lambda g: (g != prefer, self._expiry_key(g), g),
        )
        taken: dict[int, int] = {}
        for grant_id in order:
            part = min(amount, self.grants[grant_id].remaining)
            if part:
                self.grants[grant_id].remaining -= part
                taken[grant_id] = part
                amount -= part
        assert amount == 0
        return taken

    def _expiry_key(self, grant_id: int) -> tuple[bool, datetime]:
        expires_at = self.grants[grant_id].expires_at
        return (expires_at is None, expires_at or datetime.max.replace(tzinfo=T0.tzinfo))

    def _give_back(self, hold: ModelHold, keep: int) -> None:
        for grant_id in sorted(hold.allocations, key=lambda g: (self._expiry_key(g), g)):
            spent = min(hold.allocations[grant_id], keep)
            keep -= spent
            self.grants[grant_id].remaining += hold.allocations[grant_id] - spent

    def on_hold(self, grant_id: int) -> int:
        """Credits of a grant that open holds took."""
        return sum(
            h.allocations.get(grant_id, 0) for h in self.holds.values() if h.status == "open"
        )

    def settle_hold(self, hold_id: int, spend: int, status: str) -> None:
        hold = self.holds[hold_id]
        self._give_back(hold, keep=spend)
        hold.status = status


class LedgerMachine(RuleBasedStateMachine):
    """One fresh free-plan user per example; the database is shared by the examples."""

    engine = None
    policy = None

    @initialize()
    def create_user(self) -> None:
        self.user = f"model-{next(_users)}"
        self.model = Model(now=T0)
        self.entries: dict[int, ModelEntry] = {}
        new_user(self.engine, self.policy, self.user, now=T0)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    grants.c.id,
                    grants.c.remaining,
                    grants.c.expires_at,
                    entries.c.id.label("entry_id"),
                )
                .join_from(grants, entries, entries.c.grant_id == grants.c.id)
                .where(grants.c.user_id == self.user)
            ).all()
        for row in rows:
            self.model.grants[row.id] = ModelGrant(row.remaining, row.expires_at)
            self.entries[row.entry_id] = ModelEntry(row.remaining, row.id, reversible=True)
        assert self.model.available == 105

    def _before(self) -> None:
        self.model.settle()

    def _after(self) -> None:
        self.model.settle()

    @rule(amount=st.integers(1, 60), lifetime=st.sampled_from(GRANT_LIFETIMES))
    def grant(self, amount: int, lifetime: timedelta | None) -> None:
        expires_at = None if lifetime is None else self.model.now + lifetime
        self._before()
        posting = corrections.grant(
            self.engine,
            self.user,
            amount,
            actor="model",
            reason="model",
            expires_at=expires_at,
            now=self.model.now,
        )
        self.model.grants[posting.grant_id] = ModelGrant(amount, expires_at)
        self.entries[posting.entry_id] = ModelEntry(amount, posting.grant_id, reversible=True)
        self._after()

    def _spend(self, amount: int, call, record) -> None:
        self._before()
        available = self.model.available
        if available < amount:
            try:
                call()
            except InsufficientCredits as refused:
                assert refused.details == {"available": available, "needed": amount}
            else:
                raise AssertionError(f"spending {amount} of {available} was not refused")
            return
        result = call()
        record(result, self.model.draw(amount))
        self._after()

    @rule(amount=st.integers(1, 60))
    def deduct(self, amount: int) -> None:
        def record(posting, _taken) -> None:
            assert posting.balance_after == self.model.available
            self.entries[posting.entry_id] = ModelEntry(-amount, None, reversible=True)

        self._spend(
            amount,
            lambda: spending.deduct(
                self.engine,
                self.user,
                amount,
                actor="model",
                policy=self.policy,
                now=self.model.now,
            ),
            record,
        )

    @rule(delta=st.integers(-60, 60).filter(bool))
    def adjust(self, delta: int) -> None:
        def call():
            return corrections.adjust(
                self.engine,
                self.user,
                delta,
                actor="model",
                reason="model",
                policy=self.policy,
                now=self.model.now,
            )

        if delta < 0:

            def record(posting, _taken) -> None:
                self.entries[posting.entry_id] = ModelEntry(delta, None, reversible=True)

            self._spend(-delta, call, record)
            return
        self._before()
        posting = call()
        self.model.grants[posting.grant_id] = ModelGrant(delta, None)
        self.entries[posting.entry_id] = ModelEntry(delta, posting.grant_id, reversible=True)
        self._after()

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def reverse(self, data) -> None:
        entry_id = data.draw(st.sampled_from(sorted(self.entries)), label="entry")
        entry = self.entries[entry_id]

        def call():
            return corrections.reverse(
                self.engine,
                entry_id,
                actor="model",
                reason="model",
                policy=self.policy,
                now=self.model.now,
            )

        if not entry.reversible or entry.reversed:
            expected = AlreadyReversed if entry.reversed else Conflict
            try:
                call()
            except expected:
                return
            raise AssertionError(f"reversing entry {entry_id} was not refused")
        if entry.amount < 0:
            self._before()
            posting = call()
            self.model.grants[posting.grant_id] = ModelGrant(-entry.amount, None)
            self._reversed(entry, posting)
            self._after()
            return

        def record(posting, _taken) -> None:
            self._reversed(entry, posting)

        self._before()
        if self.model.on_hold(entry.grant_id):
            # Releasing the hold would refill the reversed grant: refused until it settles.
            try:
                call()
            except Conflict as refused:
                assert "cannot be reversed yet" in refused.message
                return
            raise AssertionError(f"reversing grant {entry.grant_id} on hold was not refused")
        self._spend_preferring(entry.amount, entry.grant_id, call, record)

    def _spend_preferring(self, amount: int, grant_id: int, call, record) -> None:
        self._before()
        if self.model.available < amount:
            try:
                call()
            except InsufficientCredits:
                return
            raise AssertionError("a reversal larger than the balance was not refused")
        posting = call()
        self.model.draw(amount, prefer=grant_id)
        record(posting, None)
        self._after()

    def _reversed(self, entry: ModelEntry, posting) -> None:
        entry.reversed = True
        self.entries[posting.entry_id] = ModelEntry(
            posting.amount, posting.grant_id, reversible=False
        )

    @rule(amount=st.integers(1, 40), ttl=st.sampled_from(HOLD_TTLS))
    def reserve(self, amount: int, ttl: timedelta) -> None:
        def record(result, taken) -> None:
            assert (result.available, result.held) == (
                self.model.available,
                self.model.held + amount,
            )
            self.model.holds[result.hold_id] = ModelHold(amount, self.model.now + ttl, taken)
            self.entries[result.entry_id] = ModelEntry(-amount, None, reversible=False)

        self._spend(
            amount,
            lambda: holds.reserve(
                self.engine,
                self.user,
                amount,
                ttl=ttl,
                actor="model",
                policy=self.policy,
                now=self.model.now,
            ),
            record,
        )

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data(), whole=st.booleans(), extra=st.integers(-40, 3))
    def capture(self, data, whole: bool, extra: int) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.model.holds)), label="hold")
        hold = self.model.holds[hold_id]
        spend = None if whole else max(1, hold.amount + extra)
        self._settle_hold(
            hold_id,
            spend,
            lambda: holds.capture(self.engine, hold_id, spend, actor="model", now=self.model.now),
        )

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def release(self, data) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.model.holds)), label="hold")
        self._settle_hold(
            hold_id,
            0,
            lambda: holds.release(self.engine, hold_id, actor="model", now=self.model.now),
        )

    def _settle_hold(self, hold_id: int, spend: int | None, call) -> None:
        hold = self.model.holds[hold_id]
        amount = hold.amount if spend is None else spend
        if amount > hold.amount:
            try:
                call()
            except InvalidInput:
                return
            raise AssertionError("capturing more than was held was not refused")
        if hold.status != "open" or hold.expires_at <= self.model.now:
            try:
                call()
            except HoldSettled:
                return
            raise AssertionError(f"hold {hold_id} ({hold.status}) was settled twice")
        result = call()
        status = "released" if spend == 0 else "captured"
        self._before()
        self.model.settle_hold(hold_id, amount, status)
        self._after()
        assert (result.status, result.captured) == (status, amount)
        assert (result.available, result.held) == (self.model.available, self.model.held)

    @rule(step=st.sampled_from(STEPS))
    def advance_clock(self, step: timedelta) -> None:
        self.model.now += step

    @rule()
    def read_balance(self) -> None:
        current = balances.balance(self.engine, self.user, now=self.model.now)
        self.model.settle()
        assert (current.available, current.held) == (self.model.available, self.model.held)

    @rule()
    def sweep(self) -> None:
        holds.expire(self.engine, now=self.model.now)
        self.model.settle()

    @invariant()
    def ledger_verifies(self) -> None:
        result = verify(self.engine)
        assert result["ok"], result["problems"]

    @invariant()
    def matches_model_when_settled(self) -> None:
        with self.engine.connect() as conn:
            row = lookup.user_state(conn, self.user)
            remaining = dict(
                conn.execute(
                    sa.text("SELECT id, remaining FROM grants WHERE user_id = :u"), {"u": self.user}
                ).all()
            )
        if lookup.needs_sweep(row, self.model.now):
            return  # an expired grant or hold awaits the sweep; the next read settles it
        self.model.settle()
        assert (row.balance, row.held) == (self.model.available, self.model.held)
        assert remaining == {g: grant.remaining for g, grant in self.model.grants.items()}


def test_ledger_matches_the_model(engine, policy):
    LedgerMachine.engine, LedgerMachine.policy = engine, policy
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=int(os.environ.get("CREDITCTL_MODEL_EXAMPLES", "25")),
                stateful_step_count=30,
                deadline=None,
                derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        LedgerMachine.engine = LedgerMachine.policy = None
