"""The credits ledger: grants, usage, adjustments, reversals and expiry.

Every balance change is one append-only entry written in the same transaction
as the change. A user's row is the lock: each write starts with one
conditional UPDATE of it, so concurrent writers for one user queue there and
never read-then-write balances in Python. Credits are drawn from the grant
that expires soonest, in one set-based statement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import bindparam, case, func, or_
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.amounts import iso, utcnow
from creditctl.errors import (
    AlreadyReversed,
    Conflict,
    CreditctlError,
    DuplicateUser,
    InvalidInput,
    NotFound,
    UnknownUser,
)
from creditctl.idempotency import find_previous, fingerprint, is_key_race
from creditctl.policy import Balance, Policy, Posting, insufficient, overdue
from creditctl.tables import allocations, entries, grants, holds, plans, users
from db.engine import read, write

T = TypeVar("T")
NO_GRANT = -1
REVERSIBLE = {"usage", "adjustment", "grant", "bonus", "refund", "reset"}
ENTRY_TYPE_FOR_SOURCE = {"plan": "grant", "bonus": "bonus", "promotion": "bonus",
                         "admin": "grant", "refund": "refund"}


# --- statements, built once -------------------------------------------------------------------

_LIMITED_PLANS = sa.select(plans.c.name).where(plans.c.credits.is_not(None))
# A user with an expired grant or hold not yet swept fails the gate and is settled first, so
# usage never draws around credits an expired hold should have given back.
_NOT_STALE = sa.and_(
    or_(users.c.next_grant_expiry.is_(None), users.c.next_grant_expiry > bindparam("now")),
    or_(users.c.next_hold_expiry.is_(None), users.c.next_hold_expiry > bindparam("now")),
)
# Usage stops once a failed payment is older than the grace period (billing.past_due_grace_days).
_PAID_UP = or_(users.c.past_due_since.is_(None),
               users.c.past_due_since > bindparam("usage_cutoff"))
# Operators' corrections are not usage: a cutoff at the epoch never refuses them.
NO_CUTOFF = datetime(1970, 1, 1, tzinfo=UTC)


def _take_statement(by_email: bool, for_hold: bool) -> sa.Update:
    """Take n credits from a user's balance if that many are there: the gate of every spend."""
    who = users.c.email_key if by_email else users.c.id
    values: dict[str, Any] = {"balance": users.c.balance - bindparam("n")}
    if for_hold:
        values["held"] = users.c.held + bindparam("n")
        values["next_hold_expiry"] = _earlier(users.c.next_hold_expiry, bindparam("expires"))
    return (users.update()
            .where(who == bindparam("who"), users.c.balance >= bindparam("n"), _NOT_STALE,
                   _PAID_UP,
                   users.c.plan.in_(_LIMITED_PLANS))
            .values(**values)
            .returning(users.c.id, users.c.balance, users.c.held, users.c.plan))


def _earlier(current: Any, candidate: Any) -> sa.Case:
    return case((or_(current.is_(None), current > candidate), candidate), else_=current)


TAKE = {(e, h): _take_statement(e, h) for e in (False, True) for h in (False, True)}

# Grants in spending order with the credits before each one: soonest expiry first, never-expiring
# last; `prefer` puts one grant first (a reversal takes back from the grant it reverses).
_ORDERED = (
    sa.select(
        grants.c.id,
        grants.c.remaining,
        (func.sum(grants.c.remaining).over(order_by=(
            case((grants.c.id == bindparam("prefer"), 0), else_=1),
            grants.c.expires_at.is_(None), grants.c.expires_at, grants.c.id,
        )) - grants.c.remaining).label("before"),
    )
    .where(grants.c.user_id == bindparam("uid"), grants.c.remaining > 0,
           or_(grants.c.expires_at.is_(None), grants.c.expires_at > bindparam("now")))
    .subquery("ordered")
)
_TAKE_FROM_GRANT = case(
    (_ORDERED.c.before + _ORDERED.c.remaining <= bindparam("n"), _ORDERED.c.remaining),
    else_=bindparam("n") - _ORDERED.c.before,
)
DRAW = (grants.update()
        .where(grants.c.id == _ORDERED.c.id, _ORDERED.c.before < bindparam("n"))
        .values(remaining=grants.c.remaining - _TAKE_FROM_GRANT))
ALLOCATE = allocations.insert().from_select(
    ["hold_id", "grant_id", "amount"],
    sa.select(bindparam("hold_id", type_=sa.Integer), _ORDERED.c.id, _TAKE_FROM_GRANT)
    .where(_ORDERED.c.before < bindparam("n")),
)
DRAW_ALLOCATED = (grants.update()
                  .where(grants.c.id == allocations.c.grant_id,
                         allocations.c.hold_id == bindparam("hold_id"))
                  .values(remaining=grants.c.remaining - allocations.c.amount))

INSERT_ENTRY = entries.insert().returning(entries.c.id)
INSERT_GRANT = grants.insert().returning(grants.c.id)
_CREDIT = (users.update().where(users.c.id == bindparam("uid"))
           .values(balance=users.c.balance + bindparam("n"),
                   next_grant_expiry=_earlier(users.c.next_grant_expiry, bindparam("expires")))
           .returning(users.c.balance))
_CREDIT_NO_EXPIRY = (users.update().where(users.c.id == bindparam("uid"))
                     .values(balance=users.c.balance + bindparam("n"))
                     .returning(users.c.balance))
_NOTE_HOLD_EXPIRY = (users.update().where(users.c.id == bindparam("uid"))
                     .values(next_hold_expiry=_earlier(users.c.next_hold_expiry,
                                                       bindparam("expires"))))
LOCK_USER = (users.update().where(users.c.id == bindparam("uid"))
             .values(balance=users.c.balance).returning(users.c.balance, users.c.held))


def _user_state(by_email: bool) -> sa.Select:
    who = users.c.email_key if by_email else users.c.id
    return (sa.select(users.c.id, users.c.email, users.c.plan, users.c.balance, users.c.held,
                      users.c.next_grant_expiry, users.c.next_hold_expiry, plans.c.credits,
                      users.c.past_due_since)
            .join_from(users, plans, users.c.plan == plans.c.name)
            .where(who == bindparam("who")))


STATE = {False: _user_state(False), True: _user_state(True)}


# --- transactions ------------------------------------------------------------------------------

def run_write(engine: Engine, operation: Callable[[Connection], T]) -> T:
    """Run `operation` in one write transaction, retrying once if an idempotency key raced."""
    for attempt in (1, 2):
        try:
            with write(engine) as conn:
                return operation(conn)
        except sa.exc.IntegrityError as exc:
            if attempt == 1 and is_key_race(exc):
                continue
            raise translate_integrity_error(exc) from None
    raise AssertionError("unreachable")


def translate_integrity_error(exc: sa.exc.IntegrityError) -> CreditctlError:
    text = str(exc.orig)
    if "email_key" in text:
        return DuplicateUser("a user with that email already exists")
    if "pk_users" in text or "users.id" in text:
        return DuplicateUser("a user with that id already exists")
    if "reverses_entry_id" in text:
        return AlreadyReversed("that entry has already been reversed")
    if "balance_bounded" in text:
        return InvalidInput("that change would take the balance past the limit of "
                            "1000000000 credits")
    return CreditctlError(f"the database refused the change: {text.splitlines()[0]}")


def by_email(user: str) -> bool:
    return "@" in user


def lookup_key(user: str) -> str:
    return user.strip().lower() if by_email(user) else user.strip()


# --- reading ---------------------------------------------------------------------------------

def user_state(conn: Connection, user: str) -> Row:
    row = conn.execute(STATE[by_email(user)], {"who": lookup_key(user)}).first()
    if row is None:
        raise UnknownUser(f"unknown user {user!r}: no user has that id or email; "
                          "see `creditctl users search`")
    return row


def current_user(conn: Connection, user: str, now: datetime) -> str:
    """The user's id, with expired grants and holds swept first so balances printed are current."""
    state = user_state(conn, user)
    if needs_settling(state, now):
        settle(conn, state.id, now=now)
    return state.id


def needs_settling(row: Row, now: datetime) -> bool:
    """True when a grant or hold of this user has expired and not yet been swept."""
    return any(moment is not None and moment <= now
               for moment in (row.next_grant_expiry, row.next_hold_expiry))


def balance(engine: Engine, user: str, *, now: datetime | None = None) -> Balance:
    """The user's balance, counting expired grants and holds as swept."""
    now = now or utcnow()
    with read(engine) as conn:
        row = user_state(conn, user)
    if needs_settling(row, now):
        row = run_write(engine, lambda conn: _settled_state(conn, row.id, now))
    return _balance_of(row)


def _settled_state(conn: Connection, user_id: str, now: datetime) -> Row:
    settle(conn, user_id, now=now)
    return user_state(conn, user_id)


def _balance_of(row: Row) -> Balance:
    return Balance(user_id=row.id, email=row.email, plan=row.plan,
                   unlimited=row.credits is None, available=row.balance, held=row.held)


# --- writing ---------------------------------------------------------------------------------

def post_entry(conn: Connection, *, user_id: str, type: str, amount: int, balance_after: int,
               actor: str, now: datetime, **fields: Any) -> int:
    """Append one ledger entry; returns its id."""
    values = {"user_id": user_id, "type": type, "amount": amount,
              "balance_after": balance_after, "actor": actor, "created_at": now,
              "quantity": 0, "description": "", "reference": None, "idempotency_key": None,
              "request_hash": None, "grant_id": None, "hold_id": None,
              "reverses_entry_id": None}
    values.update(fields)
    return conn.execute(INSERT_ENTRY, values).scalar_one()


def add_grant(conn: Connection, *, user_id: str, source: str, amount: int, actor: str,
              now: datetime, expires_at: datetime | None = None, period_key: str | None = None,
              entry_type: str | None = None, **entry_fields: Any) -> Posting:
    """Create a grant and its ledger entry, crediting the user's balance."""
    params = {"uid": user_id, "n": amount, "expires": expires_at}
    statement = _CREDIT if expires_at is not None else _CREDIT_NO_EXPIRY
    balance_after = conn.execute(statement, params).scalar_one_or_none()
    if balance_after is None:
        raise UnknownUser(f"unknown user {user_id!r}")
    grant_id = conn.execute(INSERT_GRANT, {
        "user_id": user_id, "source": source, "amount": amount, "remaining": amount,
        "expires_at": expires_at, "period_key": period_key, "created_at": now,
    }).scalar_one()
    kind = entry_type or ENTRY_TYPE_FOR_SOURCE[source]
    entry_id = post_entry(conn, user_id=user_id, type=kind, amount=amount,
                          balance_after=balance_after, actor=actor, now=now,
                          grant_id=grant_id, **entry_fields)
    return Posting(entry_id=entry_id, user_id=user_id, type=kind, amount=amount,
                   balance_after=balance_after, grant_id=grant_id)


@dataclass(frozen=True)
class Taken:
    """Credits taken from a user's balance by `take`."""

    user_id: str
    balance_after: int
    held: int
    plan: str
    unlimited: bool


def take(conn: Connection, user: str, amount: int, *, now: datetime, policy: Policy,
         prefer_grant: int = NO_GRANT, hold: tuple[int, datetime] | None = None,
         usage: bool = True) -> Taken:
    """Take `amount` credits from the soonest-expiring grants, or refuse.

    With `hold`, (hold id, expiry), the credits move to that hold instead of being spent.
    Unlimited plans take nothing and never refuse for want of credits. Usage (not an
    operator's correction) is refused once a failed payment outlasts the grace period.
    """
    statement = TAKE[(by_email(user), hold is not None)]
    cutoff = policy.usage_cutoff(now) if usage else NO_CUTOFF
    params = {"who": lookup_key(user), "n": amount, "now": now, "usage_cutoff": cutoff,
              "expires": hold[1] if hold else None}
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
                conn.execute(_NOTE_HOLD_EXPIRY, {"uid": state.id, "expires": hold[1]})
            return Taken(state.id, balance_now, held, state.plan, unlimited=True)
        if not needs_settling(state, now):
            raise insufficient(user, state.balance, amount, policy)
        settle(conn, state.id, now=now)
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


def deduct(engine: Engine, user: str, amount: int, *, actor: str, policy: Policy,
           ref: str | None = None, key: str | None = None, description: str = "",
           now: datetime | None = None) -> Posting:
    """Spend `amount` credits, or refuse with InsufficientCredits and change nothing."""
    now = now or utcnow()
    request = fingerprint("deduct", amount, ref, description)

    def operation(conn: Connection) -> Posting:
        if key is not None:
            user_id = user_state(conn, user).id
            previous = find_previous(conn, user_id, key, request)
            if previous is not None:
                state = user_state(conn, user_id)
                return replayed(previous, user_id, held=state.held, plan=state.plan,
                                unlimited=state.credits is None, available=state.balance)
        taken = take(conn, user, amount, now=now, policy=policy)
        entry_id = post_entry(
            conn, user_id=taken.user_id, type="usage",
            amount=0 if taken.unlimited else -amount, balance_after=taken.balance_after,
            quantity=amount, actor=actor, now=now, reference=ref, idempotency_key=key,
            request_hash=request if key else None,
            description=description or ("usage (unlimited plan)" if taken.unlimited else "usage"))
        return Posting(entry_id, taken.user_id, "usage", 0 if taken.unlimited else -amount,
                       taken.balance_after,
                       extra={"held": taken.held, "plan": taken.plan,
                              "unlimited": taken.unlimited, "available": taken.balance_after})

    return run_write(engine, operation)


def replayed(row: Row, user_id: str, **extra: Any) -> Posting:
    """The first result of a request retried with the same idempotency key."""
    return Posting(entry_id=row.id, user_id=user_id, type=row.type, amount=row.amount,
                   balance_after=row.balance_after, replayed=True, hold_id=row.hold_id,
                   grant_id=row.grant_id, extra=extra)


def grant(engine: Engine, user: str, amount: int, *, actor: str, reason: str,
          source: str = "bonus", expires_at: datetime | None = None, key: str | None = None,
          now: datetime | None = None) -> Posting:
    """Give a user credits (bonus, promotion, admin), optionally expiring."""
    from creditctl.audit import record

    now = now or utcnow()
    require_reason(reason)
    if expires_at is not None and expires_at <= now:
        raise InvalidInput(f"expiry {iso(expires_at)} is in the past; give a future date")
    request = fingerprint("grant", amount, source, iso(expires_at), reason)

    def operation(conn: Connection) -> Posting:
        user_id = current_user(conn, user, now)
        previous = find_previous(conn, user_id, key, request)
        if previous is not None:
            return replayed(previous, user_id)
        posting = add_grant(conn, user_id=user_id, source=source, amount=amount, actor=actor,
                            now=now, expires_at=expires_at, description=reason,
                            idempotency_key=key, request_hash=request if key else None)
        record(conn, operator=actor, action="grant", user_id=user_id,
               entry_id=posting.entry_id, reason=reason, now=now,
               details={"amount": amount, "source": source, "expires_at": iso(expires_at)})
        return posting

    return run_write(engine, operation)


def adjust(engine: Engine, user: str, delta: int, *, actor: str, reason: str, policy: Policy,
           key: str | None = None, now: datetime | None = None) -> Posting:
    """An operator's correction: add credits (an admin grant) or remove them."""
    from creditctl.audit import record

    now = now or utcnow()
    require_reason(reason)
    request = fingerprint("adjust", delta, reason)

    def operation(conn: Connection) -> Posting:
        user_id = current_user(conn, user, now)
        previous = find_previous(conn, user_id, key, request)
        if previous is not None:
            return replayed(previous, user_id)
        fields = {"description": reason, "idempotency_key": key,
                  "request_hash": request if key else None}
        if delta > 0:
            posting = add_grant(conn, user_id=user_id, source="admin", amount=delta,
                                actor=actor, now=now, entry_type="adjustment", **fields)
        else:
            posting = _remove(conn, user_id, -delta, actor=actor, now=now, policy=policy,
                              **fields)
        record(conn, operator=actor, action="adjust", user_id=user_id,
               entry_id=posting.entry_id, reason=reason, now=now, details={"delta": delta})
        return posting

    return run_write(engine, operation)


def _remove(conn: Connection, user_id: str, amount: int, *, actor: str, now: datetime,
            policy: Policy, prefer_grant: int = NO_GRANT, **fields: Any) -> Posting:
    taken = take(conn, user_id, amount, now=now, policy=policy, prefer_grant=prefer_grant,
                 usage=False)
    if taken.unlimited:
        raise InvalidInput(f"user {user_id} is on an unlimited plan; their credits are not "
                           "spent, so there is nothing to remove")
    entry_id = post_entry(conn, user_id=user_id, type="adjustment", amount=-amount,
                          balance_after=taken.balance_after, actor=actor, now=now, **fields)
    return Posting(entry_id, user_id, "adjustment", -amount, taken.balance_after)


def reverse(engine: Engine, entry_id: int, *, actor: str, reason: str, policy: Policy,
            now: datetime | None = None) -> Posting:
    """Post the opposite of an entry: usage comes back as a refund grant, grants are taken back."""
    from creditctl.audit import record

    now = now or utcnow()
    require_reason(reason)

    def operation(conn: Connection) -> Posting:
        original = conn.execute(sa.select(entries).where(entries.c.id == entry_id)).first()
        if original is None:
            raise NotFound(f"ledger entry {entry_id} does not exist; see "
                           "`creditctl credits history USER`")
        _check_reversible(conn, original)
        current_user(conn, original.user_id, now)
        fields = {"description": f"reversal of entry {entry_id}: {reason}",
                  "reverses_entry_id": entry_id, "reference": original.reference}
        if original.amount < 0:
            posting = add_grant(conn, user_id=original.user_id, source="refund",
                                amount=-original.amount, actor=actor, now=now, **fields)
        else:
            posting = _remove(conn, original.user_id, original.amount, actor=actor, now=now,
                              policy=policy, prefer_grant=original.grant_id or NO_GRANT,
                              **fields)
        record(conn, operator=actor, action="reverse", user_id=original.user_id,
               entry_id=posting.entry_id, reason=reason, now=now,
               details={"reversed_entry_id": entry_id, "amount": -original.amount})
        return posting

    return run_write(engine, operation)


def _check_reversible(conn: Connection, original: Row) -> None:
    if original.type not in REVERSIBLE:
        raise Conflict(f"entry {original.id} is a {original.type} entry, which cannot be "
                       "reversed; release or capture the hold, or post an adjustment")
    if original.reverses_entry_id is not None:
        raise Conflict(f"entry {original.id} is itself a reversal; post an adjustment instead")
    if original.amount == 0:
        raise Conflict(f"entry {original.id} moved no credits, so there is nothing to reverse")
    later = conn.execute(sa.select(entries.c.id).where(
        entries.c.reverses_entry_id == original.id)).scalar_one_or_none()
    if later is not None:
        raise AlreadyReversed(f"entry {original.id} was already reversed by entry {later}")


def require_reason(reason: str | None) -> str:
    if reason is None or not reason.strip():
        raise InvalidInput("a reason is required: pass --reason \"why this change is made\"")
    if len(reason) > 500:
        raise InvalidInput("reason is longer than 500 characters; shorten it")
    return reason.strip()


# --- expiry ------------------------------------------------------------------------------------

def settle(conn: Connection, user_id: str, *, now: datetime) -> int:
    """Return expired holds' credits and expire lapsed grants; returns the entries written."""
    balance_now, held = conn.execute(LOCK_USER, {"uid": user_id}).one()
    written = 0
    lapsed = conn.execute(sa.select(holds.c.id, holds.c.reference).where(
        holds.c.user_id == user_id, holds.c.status == "open", holds.c.expires_at <= now,
    ).order_by(holds.c.id)).all()
    for hold in lapsed:
        returned = return_allocations(conn, hold.id, keep=0)
        conn.execute(holds.update().where(holds.c.id == hold.id)
                     .values(status="expired", settled_at=now))
        balance_now, held = balance_now + returned, held - returned
        post_entry(conn, user_id=user_id, type="release", amount=returned,
                   balance_after=balance_now, actor="system", now=now, hold_id=hold.id,
                   reference=hold.reference, description=f"hold {hold.id} expired")
        written += 1
    expired = conn.execute(sa.select(grants.c.id, grants.c.remaining).where(
        grants.c.user_id == user_id, grants.c.remaining > 0, grants.c.expires_at <= now,
    ).order_by(grants.c.expires_at, grants.c.id)).all()
    for lapsed_grant in expired:
        conn.execute(grants.update().where(grants.c.id == lapsed_grant.id).values(remaining=0))
        balance_now -= lapsed_grant.remaining
        post_entry(conn, user_id=user_id, type="expiry", amount=-lapsed_grant.remaining,
                   balance_after=balance_now, actor="system", now=now,
                   grant_id=lapsed_grant.id, description=f"grant {lapsed_grant.id} expired")
        written += 1
    conn.execute(users.update().where(users.c.id == user_id).values(
        balance=balance_now, held=held,
        next_grant_expiry=sa.select(func.min(grants.c.expires_at)).where(
            grants.c.user_id == user_id, grants.c.remaining > 0).scalar_subquery(),
        next_hold_expiry=sa.select(func.min(holds.c.expires_at)).where(
            holds.c.user_id == user_id, holds.c.status == "open").scalar_subquery(),
    ))
    return written


def return_allocations(conn: Connection, hold_id: int, keep: int) -> int:
    """Give a hold's credits back to their grants, keeping `keep` (spent); returns what came back.

    Credits are spent from the soonest-expiring grants; the rest go back where they came from.
    The caller holds the user's lock.
    """
    rows = conn.execute(
        sa.select(allocations.c.grant_id, allocations.c.amount, grants.c.expires_at)
        .join_from(allocations, grants, allocations.c.grant_id == grants.c.id)
        .where(allocations.c.hold_id == hold_id)
        .order_by(grants.c.expires_at.is_(None), grants.c.expires_at, grants.c.id)).all()
    returned, to_spend, earliest = 0, keep, None
    for row in rows:
        spent = min(row.amount, to_spend)
        to_spend -= spent
        back = row.amount - spent
        if back:
            conn.execute(grants.update().where(grants.c.id == row.grant_id)
                         .values(remaining=grants.c.remaining + back))
            returned += back
            if row.expires_at is not None and (earliest is None or row.expires_at < earliest):
                earliest = row.expires_at
    if earliest is not None:
        conn.execute(users.update()
                     .where(users.c.id == sa.select(holds.c.user_id)
                            .where(holds.c.id == hold_id).scalar_subquery())
                     .values(next_grant_expiry=_earlier(users.c.next_grant_expiry, earliest)))
    return returned


def settle_due(engine: Engine, *, now: datetime | None = None) -> dict[str, int]:
    """Sweep every user with an expired hold or grant; each user in their own transaction."""
    now = now or utcnow()
    with read(engine) as conn:
        due = conn.execute(sa.select(users.c.id).where(or_(
            users.c.next_grant_expiry <= now, users.c.next_hold_expiry <= now,
        )).order_by(users.c.id)).scalars().all()
    written = 0
    for user_id in due:
        written += run_write(engine, lambda conn, uid=user_id: settle(conn, uid, now=now))
    return {"users": len(due), "entries": written}


# --- history -----------------------------------------------------------------------------------

def history(engine: Engine, user: str, *, since: datetime | None = None,
            until: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The user's ledger entries, oldest first (the newest `limit` when given)."""
    with read(engine) as conn:
        user_id = user_state(conn, user).id
        query = sa.select(entries).where(entries.c.user_id == user_id)
        if since is not None:
            query = query.where(entries.c.created_at >= since)
        if until is not None:
            query = query.where(entries.c.created_at < until)
        query = query.order_by(entries.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        rows = conn.execute(query).all()
    return [entry_dict(row) for row in reversed(rows)]


def entry_dict(row: Row) -> dict[str, Any]:
    return {
        "id": row.id, "created_at": iso(row.created_at), "user_id": row.user_id,
        "type": row.type, "amount": row.amount, "balance_after": row.balance_after,
        "quantity": row.quantity, "description": row.description, "actor": row.actor,
        "reference": row.reference, "idempotency_key": row.idempotency_key,
        "grant_id": row.grant_id, "hold_id": row.hold_id,
        "reverses_entry_id": row.reverses_entry_id,
    }
