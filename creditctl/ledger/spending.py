"""Spending credits: taking them from the soonest-expiring grants, or refusing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection, Engine

from creditctl.clock import utcnow
from creditctl.ledger.idempotency import fingerprint
from creditctl.ledger.lookup import by_email, lookup_key, needs_sweep, user_state
from creditctl.ledger.policy import Policy, insufficient, overdue
from creditctl.ledger.postings import post_entry
from creditctl.ledger.replays import find_previous, replayed
from creditctl.ledger.results import Posting
from creditctl.ledger.statements import (
    ALLOCATE,
    DRAW,
    DRAW_ALLOCATED,
    LOCK_USER,
    NO_CUTOFF,
    NO_GRANT,
    NOTE_HOLD_EXPIRY,
    TAKE,
)
from creditctl.ledger.sweep import sweep_user
from creditctl.ledger.transactions import run_write


@dataclass(frozen=True)
class Taken:
    """Credits taken from a user's balance by `take`."""

    user_id: str
    balance_after: int
    held: int
    plan: str
    unlimited: bool


def take(
    conn: Connection,
    user: str,
    amount: int,
    *,
    now: datetime,
    policy: Policy,
    prefer_grant: int = NO_GRANT,
    hold: tuple[int, datetime] | None = None,
    usage: bool = True,
) -> Taken:
    """Take `amount` credits from the soonest-expiring grants, or refuse.

    With `hold`, (hold id, expiry), the credits move to that hold instead of being spent.
    Unlimited plans take nothing and never refuse for want of credits. Usage (not an
    operator's correction) is refused once a failed payment outlasts the grace period.
    """
    statement = TAKE[(by_email(user), hold is not None)]
    cutoff = policy.usage_cutoff(now) if usage else NO_CUTOFF
    params = {
        "who": lookup_key(user),
        "n": amount,
        "now": now,
        "usage_cutoff": cutoff,
        "expires": hold[1] if hold else None,
    }
    row = conn.execute(statement, params).first()
    if row is None:
        state = user_state(conn, user)
        if state.past_due_since is not None and state.past_due_since <= cutoff:
            raise overdue(user, state.past_due_since, policy)
        if state.credits is None:
            # Lock the row so this entry's balance_after cannot race a concurrent grant.
            balance_now, held = conn.execute(LOCK_USER, {"uid": state.id}).one()
            if hold is not None:
                # Nothing is held, but the sweep must still find the hold when it lapses.
                conn.execute(NOTE_HOLD_EXPIRY, {"uid": state.id, "expires": hold[1]})
            return Taken(state.id, balance_now, held, state.plan, unlimited=True)
        if not needs_sweep(state, now):
            raise insufficient(user, state.balance, amount, policy)
        sweep_user(conn, state.id, now=now)
        row = conn.execute(statement, params).first()
        if row is None:
            raise insufficient(user, user_state(conn, user).balance, amount, policy)
    draw_params = {"uid": row.id, "n": amount, "now": now, "prefer": prefer_grant}
    if hold is None:
        conn.execute(DRAW, draw_params)
    else:
        conn.execute(ALLOCATE, {**draw_params, "hold_id": hold[0]})
        conn.execute(DRAW_ALLOCATED, {"hold_id": hold[0]})
    return Taken(row.id, row.balance, row.held, row.plan, unlimited=False)


def deduct(
    engine: Engine,
    user: str,
    amount: int,
    *,
    actor: str,
    policy: Policy,
    ref: str | None = None,
    key: str | None = None,
    description: str = "",
    now: datetime | None = None,
) -> Posting:
    """Spend `amount` credits, or refuse with InsufficientCredits and change nothing."""
    now = now or utcnow()
    request = fingerprint("deduct", amount, ref, description)

    def operation(conn: Connection) -> Posting:
        if key is not None:
            user_id = user_state(conn, user).id
            previous = find_previous(conn, user_id, key, request)
            if previous is not None:
                state = user_state(conn, user_id)
                return replayed(
                    previous,
                    user_id,
                    held=state.held,
                    plan=state.plan,
                    unlimited=state.credits is None,
                    available=state.balance,
                )
        taken = take(conn, user, amount, now=now, policy=policy)
        entry_id = post_entry(
            conn,
            user_id=taken.user_id,
            type="usage",
            amount=0 if taken.unlimited else -amount,
            balance_after=taken.balance_after,
            quantity=amount,
            actor=actor,
            now=now,
            reference=ref,
            idempotency_key=key,
            request_hash=request if key else None,
            description=description or ("usage (unlimited plan)" if taken.unlimited else "usage"),
        )
        return Posting(
            entry_id,
            taken.user_id,
            "usage",
            0 if taken.unlimited else -amount,
            taken.balance_after,
            extra={
                "held": taken.held,
                "plan": taken.plan,
                "unlimited": taken.unlimited,
                "available": taken.balance_after,
            },
        )

    return run_write(engine, operation)
