"""The ledger's statements, built once in SQLAlchemy Core.

A user's row is the lock: each write starts with one conditional UPDATE of it, so
concurrent writers for one user queue there and never read-then-write balances in
Python. Credits are drawn from the grant that expires soonest, in one set-based statement.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam, case, func, or_

from creditctl.db.tables import allocations, entries, grants, holds, plans, users

# --- statements, built once -------------------------------------------------------------------

# A grant or hold of the user expired at `now` and the sweep has not visited yet: the SQL form
# of creditctl.ledger.rules.is_stale. NULL (nothing to expire) counts as not stale.
STALE = or_(
    users.c.next_grant_expiry <= bindparam("now"), users.c.next_hold_expiry <= bindparam("now")
)
_LIMITED_PLANS = sa.select(plans.c.name).where(plans.c.credits.is_not(None))
# A stale user fails the gate and is swept first, so usage never draws around credits an
# expired hold should have given back.
_NOT_STALE = sa.not_(func.coalesce(STALE, sa.false()))
# Usage stops once a failed payment is older than the grace period (billing.past_due_grace_days).
# Operators' corrections are not usage: they pass NO_CUTOFF, the epoch, which never refuses.
_PAID_UP = or_(users.c.past_due_since.is_(None), users.c.past_due_since > bindparam("usage_cutoff"))


def _take_statement(by_email: bool, for_hold: bool) -> sa.Update:
    """Take n credits from a user's balance if that many are there: the gate of every spend."""
    who = users.c.email_key if by_email else users.c.id
    values: dict[str, Any] = {"balance": users.c.balance - bindparam("n")}
    if for_hold:
        values["held"] = users.c.held + bindparam("n")
        values["next_hold_expiry"] = earlier(users.c.next_hold_expiry, bindparam("expires"))
    return (
        users.update()
        .where(
            who == bindparam("who"),
            users.c.balance >= bindparam("n"),
            _NOT_STALE,
            _PAID_UP,
            users.c.plan.in_(_LIMITED_PLANS),
        )
        .values(**values)
        .returning(users.c.id, users.c.balance, users.c.held, users.c.plan)
    )


def earlier(current: Any, candidate: Any) -> sa.Case:
    return case((or_(current.is_(None), current > candidate), candidate), else_=current)


TAKE = {(e, h): _take_statement(e, h) for e in (False, True) for h in (False, True)}

# Grants in spending order with the credits before each one: soonest expiry first, never-expiring
# last; `prefer` puts one grant first (a reversal takes back from the grant it reverses).
_ORDERED = (
    sa.select(
        grants.c.id,
        grants.c.remaining,
        (
            func.sum(grants.c.remaining).over(
                order_by=(
                    case((grants.c.id == bindparam("prefer"), 0), else_=1),
                    grants.c.expires_at.is_(None),
                    grants.c.expires_at,
                    grants.c.id,
                )
            )
            - grants.c.remaining
        ).label("before"),
    )
    .where(
        grants.c.user_id == bindparam("uid"),
        grants.c.remaining > 0,
        or_(grants.c.expires_at.is_(None), grants.c.expires_at > bindparam("now")),
    )
    .subquery("ordered")
)
_TAKE_FROM_GRANT = case(
    (_ORDERED.c.before + _ORDERED.c.remaining <= bindparam("n"), _ORDERED.c.remaining),
    else_=bindparam("n") - _ORDERED.c.before,
)
DRAW = (
    grants.update()
    .where(grants.c.id == _ORDERED.c.id, _ORDERED.c.before < bindparam("n"))
    .values(remaining=grants.c.remaining - _TAKE_FROM_GRANT)
)
ALLOCATE = allocations.insert().from_select(
    ["hold_id", "grant_id", "amount"],
    sa.select(bindparam("hold_id", type_=sa.Integer), _ORDERED.c.id, _TAKE_FROM_GRANT).where(
        _ORDERED.c.before < bindparam("n")
    ),
)
DRAW_ALLOCATED = (
    grants.update()
    .where(grants.c.id == allocations.c.grant_id, allocations.c.hold_id == bindparam("hold_id"))
    .values(remaining=grants.c.remaining - allocations.c.amount)
)

INSERT_ENTRY = entries.insert().returning(entries.c.id)
INSERT_GRANT = grants.insert().returning(grants.c.id)
CREDIT = (
    users.update()
    .where(users.c.id == bindparam("uid"))
    .values(
        balance=users.c.balance + bindparam("n"),
        next_grant_expiry=earlier(users.c.next_grant_expiry, bindparam("expires")),
    )
    .returning(users.c.balance)
)
CREDIT_NO_EXPIRY = (
    users.update()
    .where(users.c.id == bindparam("uid"))
    .values(balance=users.c.balance + bindparam("n"))
    .returning(users.c.balance)
)
NOTE_HOLD_EXPIRY = (
    users.update()
    .where(users.c.id == bindparam("uid"))
    .values(next_hold_expiry=earlier(users.c.next_hold_expiry, bindparam("expires")))
)
LOCK_USER = (
    users.update()
    .where(users.c.id == bindparam("uid"))
    .values(balance=users.c.balance)
    .returning(users.c.balance, users.c.held)
)


def _user_state(by_email: bool) -> sa.Select:
    who = users.c.email_key if by_email else users.c.id
    return (
        sa.select(
            users.c.id,
            users.c.email,
            users.c.plan,
            users.c.balance,
            users.c.held,
            users.c.next_grant_expiry,
            users.c.next_hold_expiry,
            plans.c.credits,
            users.c.past_due_since,
        )
        .join_from(users, plans, users.c.plan == plans.c.name)
        .where(who == bindparam("who"))
    )


STATE = {False: _user_state(False), True: _user_state(True)}

# The entry a request with this idempotency key wrote, if any.
FIND_KEY = sa.select(
    entries.c.id,
    entries.c.request_hash,
    entries.c.type,
    entries.c.amount,
    entries.c.balance_after,
    entries.c.hold_id,
    entries.c.grant_id,
    entries.c.created_at,
).where(entries.c.user_id == bindparam("uid"), entries.c.idempotency_key == bindparam("key"))


# --- a balance as if swept, without writing ----------------------------------------------------

# What the sweep would do, read instead of written: an expired hold gives back what it took from
# grants still alive (what it gives back to an expired grant expires with it), and every expired
# grant loses what remains. Only computed for a user the sweep would visit (a stale one).
_LAPSED = sa.and_(
    holds.c.user_id == users.c.id,
    holds.c.status == "open",
    holds.c.expires_at <= bindparam("now"),
)
_ALIVE = or_(grants.c.expires_at.is_(None), grants.c.expires_at > bindparam("now"))


def _if_stale(amount: Any, label: str) -> sa.Label:
    return case((STALE, func.coalesce(amount.scalar_subquery(), 0)), else_=0).label(label)


_RETURNED = sa.select(func.sum(allocations.c.amount)).join_from(
    allocations, holds, allocations.c.hold_id == holds.c.id
)
_RETURNED_LIVE = _RETURNED.join(grants, allocations.c.grant_id == grants.c.id).where(
    _LAPSED, _ALIVE
)
_EXPIRING = sa.select(func.sum(grants.c.remaining)).where(
    grants.c.user_id == users.c.id, grants.c.remaining > 0, grants.c.expires_at <= bindparam("now")
)


def _account(by_email: bool) -> sa.Select:
    return _user_state(by_email).add_columns(
        _if_stale(_RETURNED.where(_LAPSED), "returned"),
        _if_stale(_RETURNED_LIVE, "returned_live"),
        _if_stale(_EXPIRING, "expiring"),
    )


ACCOUNT = {False: _account(False), True: _account(True)}
