"""The render scripts' path: `credits deduct`, `check` and `balance` without importing SQLAlchemy.

The rules are creditctl.ledger.rules', the same code the full path runs; here they run on a
bare driver connection (creditctl.ledger.drivers) with the statements rendered ahead of time
into _fastsql.py. Refusals (unknown user, insufficient credits, suspended usage, a key reused
for another request) are decided here like anywhere else. The full path, through
SQLAlchemy, takes over only when the bare driver steps aside: a URL only the engine reads
(a SQLite URL with options, a missing file), a user with expired holds or grants to sweep
before a deduct or a balance (`check` counts them as swept without writing), a key that
raced, or a database error other than a lock timeout before anything was committed. It goes
straight to a SQLAlchemy transaction: the bare driver is not tried a second time.

CREDITCTL_FASTPATH=0 sends every call to the full path (to compare, or to rule this one out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from creditctl.clock import utcnow
from creditctl.ledger import drivers, rules
from creditctl.ledger.policy import Policy
from creditctl.ledger.results import Balance, Deducted
from creditctl.ledger.rules import Executor, StepAside, SweepFirst, Verdict

SWITCH = "CREDITCTL_FASTPATH"


@dataclass(frozen=True)
class Database:
    """Where the ledger lives, and how to get the full engine if the fast path steps aside."""

    url: str
    busy_timeout_ms: int
    engine: Callable[[], Any]
    fast: bool = True


def enabled(environ: Any) -> bool:
    """False when the environment switches the fast path off (CREDITCTL_FASTPATH=0)."""
    return environ.get(SWITCH, "1").strip() != "0"


def deduct(
    database: Database,
    user: str,
    amount: int,
    *,
    actor: str,
    policy: Policy,
    ref: str | None = None,
    key: str | None = None,
) -> Deducted:
    """Spend `amount` credits, or refuse and change nothing."""
    now = utcnow()

    def operation(ex: Executor) -> Deducted:
        return rules.deduct(ex, user, amount, actor=actor, policy=policy, now=now, ref=ref, key=key)

    if database.fast:
        try:
            return drivers.on_url(
                database.url,
                database.busy_timeout_ms,
                operation,
                write=True,
                outcome_unknown=lambda: rules.outcome_unknown(user, key),
            )
        except StepAside:
            pass
    from creditctl.ledger import spending

    # After a step-aside, straight to SQLAlchemy; switched off, the in-process callers' path.
    full = spending.deduct_on_sqlalchemy if database.fast else spending.deduct
    return full(
        database.engine(), user, amount, actor=actor, policy=policy, ref=ref, key=key, now=now
    )


def balance(database: Database, user: str) -> Balance:
    """What the user can spend now; a user with something to sweep goes to the full path."""
    now = utcnow()
    if database.fast:
        try:
            return drivers.on_url(
                database.url,
                database.busy_timeout_ms,
                lambda ex: rules.balance(ex, user, now=now),
                write=False,
            )
        except SweepFirst:
            from creditctl.ledger.balances import swept_balance

            return swept_balance(database.engine(), user, now=now)
        except StepAside:
            pass
    from creditctl.ledger.balances import balance as full_balance

    return full_balance(database.engine(), user, now=now)


def check(database: Database, user: str, amount: int, *, policy: Policy) -> Verdict:
    """Would a deduct of `amount` go through now, and if not why; writes nothing."""
    now = utcnow()
    if database.fast:
        try:
            return drivers.on_url(
                database.url,
                database.busy_timeout_ms,
                lambda ex: rules.check(ex, user, amount, policy=policy, now=now),
                write=False,
            )
        except StepAside:
            pass
    from creditctl.ledger.balances import check as full_check

    return full_check(database.engine(), user, amount, policy=policy, now=now)
