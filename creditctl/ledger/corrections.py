"""Operators' changes: grants, adjustments and reversals, each audited with a reason."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from creditctl.clock import iso, utcnow
from creditctl.db.tables import allocations, entries, holds
from creditctl.errors import (
    AlreadyReversed,
    Conflict,
    InvalidInput,
    NotFound,
)
from creditctl.ledger.audit import record
from creditctl.ledger.idempotency import fingerprint
from creditctl.ledger.policy import Policy
from creditctl.ledger.postings import add_grant, post_entry
from creditctl.ledger.replays import find_previous, replayed
from creditctl.ledger.results import Posting
from creditctl.ledger.rules import NO_GRANT
from creditctl.ledger.spending import take
from creditctl.ledger.statements import LOCK_USER
from creditctl.ledger.sweep import find_and_sweep
from creditctl.ledger.transactions import run_write
from creditctl.parsing.text import check_reason

REVERSIBLE = {"usage", "adjustment", "grant", "bonus", "refund", "reset"}
# The grant sources (creditctl.db.models.GRANT_SOURCES) an operator may give: plan credits
# come from plans and refunds from reversals, never from `grant`.
OPERATOR_SOURCES = ("bonus", "promotion", "admin")


def grant(
    engine: Engine,
    user: str,
    amount: int,
    *,
    actor: str,
    reason: str | None,
    source: str = "bonus",
    expires_at: datetime | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> Posting:
    """Give a user credits (bonus, promotion, admin), optionally expiring."""
    now = now or utcnow()
    if source not in OPERATOR_SOURCES:
        raise InvalidInput(f"source {source!r} is not one of {', '.join(OPERATOR_SOURCES)}")
    reason = check_reason(reason)
    if expires_at is not None and expires_at <= now:
        raise InvalidInput(f"expiry {iso(expires_at)} is in the past; give a future date")
    request = fingerprint("grant", amount, source, iso(expires_at), reason)

    def operation(conn: Connection) -> Posting:
        user_id = find_and_sweep(conn, user, now)
        previous = find_previous(conn, user_id, key, request)
        if previous is not None:
            return replayed(previous, user_id)
        posting = add_grant(
            conn,
            user_id=user_id,
            source=source,
            amount=amount,
            actor=actor,
            now=now,
            expires_at=expires_at,
            description=reason,
            idempotency_key=key,
            request_hash=request if key else None,
        )
        record(
            conn,
            operator=actor,
            action="grant",
            user_id=user_id,
            entry_id=posting.entry_id,
            reason=reason,
            now=now,
            details={"amount": amount, "source": source, "expires_at": iso(expires_at)},
        )
        return posting

    return run_write(engine, operation)


def adjust(
    engine: Engine,
    user: str,
    delta: int,
    *,
    actor: str,
    reason: str | None,
    policy: Policy,
    key: str | None = None,
    now: datetime | None = None,
) -> Posting:
    """An operator's correction: add credits (an admin grant) or remove them."""
    now = now or utcnow()
    reason = check_reason(reason)
    request = fingerprint("adjust", delta, reason)

    def operation(conn: Connection) -> Posting:
        user_id = find_and_sweep(conn, user, now)
        previous = find_previous(conn, user_id, key, request)
        if previous is not None:
            return replayed(previous, user_id)
        fields: dict[str, Any] = {
            "description": reason,
            "idempotency_key": key,
            "request_hash": request if key else None,
        }
        if delta > 0:
            posting = add_grant(
                conn,
                user_id=user_id,
                source="admin",
                amount=delta,
                actor=actor,
                now=now,
                entry_type="adjustment",
                **fields,
            )
        else:
            posting = _remove(conn, user_id, -delta, actor=actor, now=now, policy=policy, **fields)
        record(
            conn,
            operator=actor,
            action="adjust",
            user_id=user_id,
            entry_id=posting.entry_id,
            reason=reason,
            now=now,
            details={"delta": delta},
        )
        return posting

    return run_write(engine, operation)


def _remove(
    conn: Connection,
    user_id: str,
    amount: int,
    *,
    actor: str,
    now: datetime,
    policy: Policy,
    prefer_grant: int = NO_GRANT,
    **fields: Any,
) -> Posting:
    taken = take(
        conn, user_id, amount, now=now, policy=policy, prefer_grant=prefer_grant, usage=False
    )
    if taken.unlimited:
        raise InvalidInput(
            f"user {user_id} is on an unlimited plan; their credits are not "
            "spent, so there is nothing to remove"
        )
    entry_id = post_entry(
        conn,
        user_id=user_id,
        type="adjustment",
        amount=-amount,
        balance_after=taken.balance_after,
        actor=actor,
        now=now,
        **fields,
    )
    return Posting(entry_id, user_id, "adjustment", -amount, taken.balance_after)


def reverse(
    engine: Engine,
    entry_id: int,
    *,
    actor: str,
    reason: str | None,
    policy: Policy,
    now: datetime | None = None,
) -> Posting:
    """Post the opposite of an entry: usage comes back as a refund grant, grants are taken back.

    A grant is taken back from what remains of it first, then from the user's other credits
    (for what was spent). While some of its credits sit on an open hold the reversal is
    refused (Conflict): releasing that hold would put them back into the reversed grant. The
    operator captures or releases the hold, or waits for it to expire, then reverses.
    """
    now = now or utcnow()
    reason = check_reason(reason)

    def operation(conn: Connection) -> Posting:
        original = conn.execute(sa.select(entries).where(entries.c.id == entry_id)).first()
        if original is None:
            raise NotFound(
                f"ledger entry {entry_id} does not exist; see `creditctl credits history USER`"
            )
        _check_reversible(conn, original)
        find_and_sweep(conn, original.user_id, now)
        if original.amount > 0 and original.grant_id is not None:
            _refuse_if_on_hold(conn, original)
        fields = {
            "description": f"reversal of entry {entry_id}: {reason}",
            "reverses_entry_id": entry_id,
            "reference": original.reference,
        }
        if original.amount < 0:
            posting = add_grant(
                conn,
                user_id=original.user_id,
                source="refund",
                amount=-original.amount,
                actor=actor,
                now=now,
                **fields,
            )
        else:
            posting = _remove(
                conn,
                original.user_id,
                original.amount,
                actor=actor,
                now=now,
                policy=policy,
                prefer_grant=original.grant_id or NO_GRANT,
                **fields,
            )
        record(
            conn,
            operator=actor,
            action="reverse",
            user_id=original.user_id,
            entry_id=posting.entry_id,
            reason=reason,
            now=now,
            details={"reversed_entry_id": entry_id, "amount": -original.amount},
        )
        return posting

    return run_write(engine, operation)


def _check_reversible(conn: Connection, original: Row) -> None:
    if original.type not in REVERSIBLE:
        raise Conflict(
            f"entry {original.id} is a {original.type} entry, which cannot be "
            "reversed; release or capture the hold, or post an adjustment"
        )
    if original.reverses_entry_id is not None:
        raise Conflict(f"entry {original.id} is itself a reversal; post an adjustment instead")
    if original.amount == 0:
        raise Conflict(f"entry {original.id} moved no credits, so there is nothing to reverse")
    later = conn.execute(
        sa.select(entries.c.id).where(entries.c.reverses_entry_id == original.id)
    ).scalar_one_or_none()
    if later is not None:
        raise AlreadyReversed(f"entry {original.id} was already reversed by entry {later}")


def _refuse_if_on_hold(conn: Connection, original: Row) -> None:
    # Under the user's lock, so no reserve can draw on the grant between this look and the take.
    conn.execute(LOCK_USER, {"uid": original.user_id})
    on_hold = conn.execute(
        sa.select(holds.c.id, allocations.c.amount, holds.c.expires_at)
        .join_from(allocations, holds, allocations.c.hold_id == holds.c.id)
        .where(
            allocations.c.grant_id == original.grant_id,
            allocations.c.amount > 0,
            holds.c.status == "open",
        )
        .order_by(holds.c.id)
    ).all()
    if not on_hold:
        return
    amount = sum(row.amount for row in on_hold)
    names = ("hold " if len(on_hold) == 1 else "holds ") + ", ".join(str(r.id) for r in on_hold)
    last = iso(max(row.expires_at for row in on_hold))
    raise Conflict(
        f"entry {original.id} cannot be reversed yet: {amount} of its grant's credits are on "
        f"open {names}; capture or release it (`creditctl credits release HOLD_ID`) or "
        f"wait until it expires (by {last}), then reverse",
        holds=[row.id for row in on_hold],
    )
