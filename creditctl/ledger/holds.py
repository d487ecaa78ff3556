"""Holds: credits set aside for a render, then captured (all or part) or released.

Reserving moves credits from the user's grants into the hold (a `hold` entry);
capturing spends part of them (a `capture` entry) and gives the rest back (a
`release` entry); a hold past its time to live is released by the sweep
(`creditctl.ledger.sweep`), and every balance read sweeps first, so an expired hold
never keeps credits away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.clock import iso, utcnow
from creditctl.db.engine import read
from creditctl.db.tables import allocations, holds, users
from creditctl.errors import HoldSettled, InvalidInput, NotFound
from creditctl.ledger.idempotency import fingerprint
from creditctl.ledger.lookup import needs_sweep, user_state
from creditctl.ledger.policy import Policy
from creditctl.ledger.postings import post_entry
from creditctl.ledger.replays import find_previous, replayed
from creditctl.ledger.results import Posting
from creditctl.ledger.spending import take
from creditctl.ledger.statements import LOCK_USER
from creditctl.ledger.sweep import return_allocations, sweep_due, sweep_user
from creditctl.ledger.transactions import run_write

INSERT_HOLD = holds.insert().returning(holds.c.id)
_SETTLE_OPEN = (
    holds.update()
    .where(
        holds.c.id == bindparam("hold_id"),
        holds.c.status == "open",
        holds.c.expires_at > bindparam("now"),
    )
    .values(status=bindparam("status"), captured=bindparam("captured"), settled_at=bindparam("now"))
    .returning(holds.c.user_id, holds.c.amount, holds.c.reference)
)
_FIND_HOLD = sa.select(holds).where(holds.c.id == bindparam("hold_id"))
_SET_HELD = (
    users.update()
    .where(users.c.id == bindparam("uid"))
    .values(balance=users.c.balance + bindparam("back"), held=users.c.held - bindparam("funded"))
    .returning(users.c.balance, users.c.held)
)


@dataclass(frozen=True)
class HoldResult:
    hold_id: int
    user_id: str
    status: str
    amount: int
    captured: int
    expires_at: datetime
    entry_id: int
    available: int
    held: int
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "hold_id": self.hold_id,
            "user_id": self.user_id,
            "status": self.status,
            "amount": self.amount,
            "captured": self.captured,
            "expires_at": iso(self.expires_at),
            "entry_id": self.entry_id,
            "available": self.available,
            "held": self.held,
            "replayed": self.replayed,
        }


def reserve(
    engine: Engine,
    user: str,
    amount: int,
    *,
    ttl: timedelta,
    actor: str,
    policy: Policy,
    ref: str | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> HoldResult:
    """Set `amount` credits aside until captured, released, or `ttl` passes."""
    now = now or utcnow()
    expires_at = now + ttl
    request = fingerprint("reserve", amount, ref, int(ttl.total_seconds()))

    def operation(conn: Connection) -> HoldResult:
        if key is not None:
            user_id = user_state(conn, user).id
            previous = find_previous(conn, user_id, key, request)
            if previous is not None:
                return _replay(conn, replayed(previous, user_id))
        state = user_state(conn, user)
        hold_id = conn.execute(
            INSERT_HOLD,
            {
                "user_id": state.id,
                "amount": amount,
                "captured": 0,
                "status": "open",
                "reference": ref,
                "created_at": now,
                "expires_at": expires_at,
            },
        ).scalar_one()
        taken = take(conn, user, amount, now=now, policy=policy, hold=(hold_id, expires_at))
        entry_id = post_entry(
            conn,
            user_id=taken.user_id,
            type="hold",
            amount=0 if taken.unlimited else -amount,
            balance_after=taken.balance_after,
            quantity=amount,
            actor=actor,
            now=now,
            reference=ref,
            hold_id=hold_id,
            idempotency_key=key,
            request_hash=request if key else None,
            description=f"hold {hold_id}",
        )
        return HoldResult(
            hold_id,
            taken.user_id,
            "open",
            amount,
            0,
            expires_at,
            entry_id,
            taken.balance_after,
            taken.held,
        )

    return run_write(engine, operation)


def capture(
    engine: Engine,
    hold_id: int,
    amount: int | None = None,
    *,
    actor: str,
    key: str | None = None,
    now: datetime | None = None,
) -> HoldResult:
    """Spend all of a hold, or `amount` of it; the rest returns to the balance at once."""
    return _settle_hold(engine, hold_id, amount, "captured", actor=actor, key=key, now=now)


def release(
    engine: Engine, hold_id: int, *, actor: str, key: str | None = None, now: datetime | None = None
) -> HoldResult:
    """Return every credit of a hold to the balance."""
    return _settle_hold(engine, hold_id, 0, "released", actor=actor, key=key, now=now)


def _settle_hold(
    engine: Engine,
    hold_id: int,
    amount: int | None,
    status: str,
    *,
    actor: str,
    key: str | None,
    now: datetime | None,
) -> HoldResult:
    now = now or utcnow()
    request = fingerprint(status, hold_id, amount)

    def operation(conn: Connection) -> HoldResult:
        hold = _find(conn, hold_id)
        if key is not None:
            previous = find_previous(conn, hold.user_id, key, request)
            if previous is not None:
                return _replay(conn, replayed(previous, hold.user_id))
        spend = hold.amount if amount is None else amount
        if spend > hold.amount:
            raise InvalidInput(
                f"cannot capture {spend} credits: hold {hold_id} holds only {hold.amount}"
            )
        conn.execute(LOCK_USER, {"uid": hold.user_id})
        settled = conn.execute(
            _SETTLE_OPEN, {"hold_id": hold_id, "now": now, "status": status, "captured": spend}
        ).first()
        if settled is None:
            raise _already_settled(_find(conn, hold_id), now)
        return _finish(conn, hold, spend, status, actor=actor, key=key, request=request, now=now)

    return run_write(engine, operation)


def _finish(
    conn: Connection,
    hold: Row,
    spend: int,
    status: str,
    *,
    actor: str,
    key: str | None,
    request: str,
    now: datetime,
) -> HoldResult:
    funded = _funded(conn, hold.id)
    back = return_allocations(conn, hold.id, keep=spend)
    balance_now, _held = conn.execute(
        _SET_HELD, {"uid": hold.user_id, "back": back, "funded": funded}
    ).one()
    keyed = {"idempotency_key": key, "request_hash": request if key else None}
    entry_id = None
    if status == "captured":
        entry_id = post_entry(
            conn,
            user_id=hold.user_id,
            type="capture",
            amount=0,
            balance_after=balance_now - back,
            quantity=spend,
            actor=actor,
            now=now,
            hold_id=hold.id,
            reference=hold.reference,
            description=f"captured {spend} of hold {hold.id}",
            **keyed,
        )
        keyed = {}
    if back or entry_id is None:
        release_id = post_entry(
            conn,
            user_id=hold.user_id,
            type="release",
            amount=back,
            balance_after=balance_now,
            actor=actor,
            now=now,
            hold_id=hold.id,
            reference=hold.reference,
            description=f"released {back} from hold {hold.id}",
            **keyed,
        )
        entry_id = entry_id or release_id
    state = user_state(conn, hold.user_id)
    if needs_sweep(state, now):
        sweep_user(conn, hold.user_id, now=now)
        state = user_state(conn, hold.user_id)
    return HoldResult(
        hold.id,
        hold.user_id,
        status,
        hold.amount,
        spend,
        hold.expires_at,
        entry_id,
        state.balance,
        state.held,
    )


def _funded(conn: Connection, hold_id: int) -> int:
    return conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(allocations.c.amount), 0)).where(
            allocations.c.hold_id == hold_id
        )
    ).scalar_one()


def _find(conn: Connection, hold_id: int) -> Row:
    hold = conn.execute(_FIND_HOLD, {"hold_id": hold_id}).first()
    if hold is None:
        raise NotFound(f"hold {hold_id} does not exist; see `creditctl holds list`")
    return hold


def _already_settled(hold: Row, now: datetime) -> HoldSettled:
    """The refusal, with the hold's state as details (`run` tells captured from lapsed)."""
    if hold.status == "open":
        return HoldSettled(
            f"hold {hold.id} expired at {iso(hold.expires_at)}; its credits "
            "went back to the balance, so nothing was captured or released",
            hold_id=hold.id,
            status="expired",
            captured=0,
        )
    return HoldSettled(
        f"hold {hold.id} is already {hold.status}; nothing was changed",
        hold_id=hold.id,
        status=hold.status,
        captured=hold.captured,
    )


def _replay(conn: Connection, posting: Posting) -> HoldResult:
    assert posting.hold_id is not None, "a keyed hold entry names its hold"
    hold = _find(conn, posting.hold_id)
    state = user_state(conn, hold.user_id)
    return HoldResult(
        hold.id,
        hold.user_id,
        hold.status,
        hold.amount,
        hold.captured,
        hold.expires_at,
        posting.entry_id,
        state.balance,
        state.held,
        replayed=True,
    )


def expire(engine: Engine, *, now: datetime | None = None) -> dict[str, int]:
    """Release every hold past its time to live (and expire lapsed grants on the way)."""
    return sweep_due(engine, now=now)


def open_holds(
    engine: Engine, *, user: str | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Open holds, oldest first; an expired one not yet swept is marked so."""
    now = now or utcnow()
    with read(engine) as conn:
        user_id = None if user is None else user_state(conn, user).id
        return holds_of(conn, user_id, now=now)


def holds_of(conn: Connection, user_id: str | None, *, now: datetime) -> list[dict[str, Any]]:
    """`open_holds` in the caller's transaction: one user's, or everyone's for None."""
    query = sa.select(holds).where(holds.c.status == "open").order_by(holds.c.id)
    if user_id is not None:
        query = query.where(holds.c.user_id == user_id)
    return [
        {
            "hold_id": r.id,
            "user_id": r.user_id,
            "amount": r.amount,
            "reference": r.reference,
            "created_at": iso(r.created_at),
            "expires_at": iso(r.expires_at),
            "state": "expired (not yet swept)" if r.expires_at <= now else "open",
        }
        for r in conn.execute(query).all()
    ]
