"""The rules of a spend: deduct, check and balance, the ledger's common case, written once.

The rules live here, free of SQLAlchemy, against a tiny executor that runs one of the
ledger's statements by name and answers rows read by column name. Two executors exist:
the bare driver (creditctl.ledger.drivers: the render scripts' fast path and the in-process
deduct) and a SQLAlchemy connection (creditctl.ledger.sql_executor: the full path). Both
run the same statements, rendered once from creditctl.ledger.statements into _fastsql.py.

A user's row is the lock: a spend starts with one conditional UPDATE of it (the `take_*`
statements), which succeeds only when the credits are there, the plan is limited, nothing
expired is left unswept and usage is not suspended; two spends can never both pass it for
the same credits. Only when it fails are the reasons read, in the order deduct reports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from creditctl.errors import CreditctlError, DatabaseUnavailable, UnknownUser
from creditctl.ledger.idempotency import fingerprint, key_conflict
from creditctl.ledger.policy import Policy, insufficient, overdue
from creditctl.ledger.results import Balance, Deducted, Taken

NO_GRANT = -1  # no grant is drawn first
# Operators' corrections are not usage: a cutoff at the epoch never suspends them.
NO_CUTOFF = datetime(1970, 1, 1, tzinfo=UTC)
USAGE = "usage"
UNLIMITED_USAGE = "usage (unlimited plan)"
# Every column a ledger entry is written with (all but its id). The drivers ignore a named
# parameter no statement uses, so the rendered INSERT and every writer build on this one
# list (entry_values), and a column added to one and not the other fails instead of vanishing.
ENTRY_COLUMNS = (
    "user_id",
    "type",
    "amount",
    "balance_after",
    "quantity",
    "description",
    "actor",
    "reference",
    "idempotency_key",
    "request_hash",
    "grant_id",
    "hold_id",
    "reverses_entry_id",
    "created_at",
)
_ENTRY_DEFAULTS: dict[str, Any] = {
    "quantity": 0,
    "description": "",
    "reference": None,
    "idempotency_key": None,
    "request_hash": None,
    "grant_id": None,
    "hold_id": None,
    "reverses_entry_id": None,
}
_REQUIRED = frozenset(ENTRY_COLUMNS) - _ENTRY_DEFAULTS.keys()


class StepAside(Exception):
    """The executor cannot take the next step; nothing it did is committed."""


class SweepFirst(StepAside):
    """The user has expired holds or grants to sweep, which this executor cannot do here."""


class Executor(Protocol):
    """Runs the ledger's statements (creditctl.ledger._fastsql) inside one transaction."""

    def one(self, name: str, params: dict[str, Any]) -> Mapping[str, Any] | None:
        """Run statement `name`; its first row, read by column name, or None."""
        ...

    def run(self, name: str, params: dict[str, Any]) -> None: ...

    def time(self, moment: datetime) -> Any:
        """A moment as the database stores it (text on SQLite), to bind and to compare."""
        ...

    def moment(self, stored: Any) -> datetime:
        """A stored time read back as an aware datetime."""
        ...

    def sweep(self, user_id: str, now: datetime) -> None:
        """Sweep the user's expired holds and grants, or raise SweepFirst."""
        ...


def by_email(user: str) -> bool:
    return "@" in user


def lookup_key(user: str) -> str:
    return user.strip().lower() if by_email(user) else user.strip()


def unknown_user(user: str) -> UnknownUser:
    return UnknownUser(
        f"unknown user {user!r}: no user has that id or email; see `creditctl users search`"
    )


def entry_values(**columns: Any) -> dict[str, Any]:
    """A ledger entry's parameters: every one of ENTRY_COLUMNS, the optional ones defaulted.

    A name that is not a column, or a required column left out, is a TypeError."""
    values = {**_ENTRY_DEFAULTS, **columns}
    if len(values) != len(ENTRY_COLUMNS) or not columns.keys() >= _REQUIRED:
        wrong = sorted(values.keys() ^ set(ENTRY_COLUMNS))
        raise TypeError(f"a ledger entry's columns are ENTRY_COLUMNS; wrong: {wrong}")
    return values


def _by(user: str) -> str:
    return "by_email" if by_email(user) else "by_id"


def user_state(ex: Executor, user: str) -> Mapping[str, Any]:
    row = ex.one(f"state_{_by(user)}", {"who": lookup_key(user)})
    if row is None:
        raise unknown_user(user)
    return row


def _due(stored: Any, stamp: Any) -> bool:
    return stored is not None and stored <= stamp


def is_stale(state: Mapping[Any, Any], stamp: Any) -> bool:
    """True when a grant or hold of this user has expired and the sweep has not visited yet:
    the Python form of creditctl.ledger.statements.STALE (`stamp` as the executor stores it)."""
    return _due(state["next_grant_expiry"], stamp) or _due(state["next_hold_expiry"], stamp)


# --- spending ----------------------------------------------------------------------------------


def take(
    ex: Executor,
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
    stamp = ex.time(now)
    cutoff = ex.time(policy.usage_cutoff(now) if usage else NO_CUTOFF)
    statement = f"take_hold_{_by(user)}" if hold else f"take_{_by(user)}"
    params = {"who": lookup_key(user), "n": amount, "now": stamp, "usage_cutoff": cutoff}
    if hold is not None:
        params["expires"] = ex.time(hold[1])
    row = ex.one(statement, params)
    if row is None:
        state = user_state(ex, user)
        if _due(state["past_due_since"], cutoff):
            raise overdue(user, ex.moment(state["past_due_since"]), policy)
        if state["credits"] is None:
            # Lock the row so this entry's balance_after cannot race a concurrent grant.
            locked = ex.one("lock_user", {"uid": state["id"]})
            assert locked is not None
            if hold is not None:
                # Nothing is held, but the sweep must still find the hold when it lapses.
                ex.run("note_hold_expiry", {"uid": state["id"], "expires": params["expires"]})
            return Taken(state["id"], locked["balance"], locked["held"], state["plan"], True)
        if not is_stale(state, stamp):
            raise insufficient(user, state["balance"], amount, policy)
        ex.sweep(state["id"], now)
        row = ex.one(statement, params)
        if row is None:
            raise insufficient(user, user_state(ex, user)["balance"], amount, policy)
    draw = {"uid": row["id"], "n": amount, "now": stamp, "prefer": prefer_grant}
    if hold is None:
        ex.run("draw", draw)
    else:
        ex.run("allocate", {**draw, "hold_id": hold[0]})
        ex.run("draw_allocated", {"hold_id": hold[0]})
    return Taken(row["id"], row["balance"], row["held"], row["plan"], unlimited=False)


def previous_entry(
    ex: Executor, user_id: str, key: str | None, request: str
) -> Mapping[str, Any] | None:
    """The entry an earlier request with this key wrote, or None; a different request conflicts.

    The user's row is locked first: a duplicate that waited for the first request to commit
    then sees its entry, instead of being refused by the balance the first one spent.
    """
    if key is None:
        return None
    ex.one("lock_user", {"uid": user_id})
    row = ex.one("find_key", {"uid": user_id, "key": key})
    if row is not None and row["request_hash"] != request:
        raise key_conflict(key, row["id"])
    return row


def deduct(
    ex: Executor,
    user: str,
    amount: int,
    *,
    actor: str,
    policy: Policy,
    now: datetime,
    ref: str | None = None,
    key: str | None = None,
    description: str = "",
) -> Deducted:
    """Spend `amount` credits, or refuse with InsufficientCredits and change nothing."""
    request = None  # the fingerprint is stored only beside a key
    if key is not None:
        request = fingerprint("deduct", amount, ref, description)
        user_id = user_state(ex, user)["id"]
        previous = previous_entry(ex, user_id, key, request)
        if previous is not None:
            state = user_state(ex, user_id)
            return Deducted(
                entry_id=previous["id"],
                user_id=user_id,
                type=previous["type"],
                amount=previous["amount"],
                balance_after=previous["balance_after"],
                hold_id=previous["hold_id"],
                grant_id=previous["grant_id"],
                available=state["balance"],
                held=state["held"],
                plan=state["plan"],
                unlimited=state["credits"] is None,
                replayed=True,
            )
    taken = take(ex, user, amount, now=now, policy=policy)
    spent = 0 if taken.unlimited else -amount
    entry = ex.one(
        "insert_entry",
        entry_values(
            user_id=taken.user_id,
            type="usage",
            amount=spent,
            balance_after=taken.balance_after,
            quantity=amount,
            description=description or (UNLIMITED_USAGE if taken.unlimited else USAGE),
            actor=actor,
            reference=ref,
            idempotency_key=key,
            request_hash=request,
            created_at=ex.time(now),
        ),
    )
    assert entry is not None
    return Deducted(
        entry_id=entry["id"],
        user_id=taken.user_id,
        type="usage",
        amount=spent,
        balance_after=taken.balance_after,
        available=taken.balance_after,
        held=taken.held,
        plan=taken.plan,
        unlimited=taken.unlimited,
    )


def outcome_unknown(user: str, key: str | None) -> DatabaseUnavailable:
    """A deduct whose COMMIT failed: it may have been recorded, so it must not be redone blindly."""
    if key is not None:
        then = f"retrying with the same key ({key}) is safe: it is spent at most once"
    else:
        then = f"check `creditctl credits history {user}` before trying again"
    return DatabaseUnavailable(
        f"the database connection failed while committing the deduct for {user}, so it may "
        f"or may not have been recorded; {then}"
    )


# --- reading, without writing ------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What `check` found: the balance, and the refusal a deduct of `needed` would meet."""

    balance: Balance
    needed: int
    refusal: CreditctlError | None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def balance(ex: Executor, user: str, *, now: datetime) -> Balance:
    """What the user can spend now, with expired holds and grants swept first (by the executor,
    which may step aside for that)."""
    found, _, stale = _account(ex, user, now)
    if stale:
        ex.sweep(found.user_id, now)
        found = _account(ex, found.user_id, now)[0]
    return found


def check(ex: Executor, user: str, amount: int, *, policy: Policy, now: datetime) -> Verdict:
    """Would a deduct of `amount` go through now? The same rules, in the same order.

    Writes nothing: expired holds and grants are counted as swept in the same read.
    """
    found, past_due_since, _ = _account(ex, user, now)
    refusal: CreditctlError | None = None
    if _due(past_due_since, ex.time(policy.usage_cutoff(now))):
        refusal = overdue(user, ex.moment(past_due_since), policy)
    elif not found.unlimited and found.available < amount:
        refusal = insufficient(user, found.available, amount, policy)
    return Verdict(found, amount, refusal)


def _account(ex: Executor, user: str, now: datetime) -> tuple[Balance, Any, bool]:
    """The balance as the sweep would leave it, when usage was suspended, and whether the
    sweep has anything to do, all in one read."""
    stamp = ex.time(now)
    row = ex.one(f"account_{_by(user)}", {"who": lookup_key(user), "now": stamp})
    if row is None:
        raise unknown_user(user)
    found = Balance(
        user_id=row["id"],
        email=row["email"],
        plan=row["plan"],
        unlimited=row["credits"] is None,
        available=row["balance"] + row["returned_live"] - row["expiring"],
        held=row["held"] - row["returned"],
    )
    return found, row["past_due_since"], is_stale(row, stamp)
