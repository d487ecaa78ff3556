"""The render scripts' fast path: deduct and balance on the bare driver, no SQLAlchemy import.

It runs the very statements of creditctl.ledger, rendered ahead of time
(creditctl/ledger/_fastsql.py), and commits only the common case: the user is found,
nothing has expired unswept, and the credits are there (or the plan is
unlimited). Anything else (a refusal, an unknown user, a retried key, expiry
to sweep, an unusual URL) answers None, and the caller takes the full path in
creditctl.ledger, which decides with the same rules. Nothing is written then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from creditctl.clock import utcnow
from creditctl.ledger._fastsql import STATEMENTS
from creditctl.ledger.idempotency import fingerprint
from creditctl.ledger.policy import Policy
from creditctl.ledger.results import Balance, Posting

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class Database:
    """Where the ledger lives, and how to get the full engine if the fast path steps aside."""

    url: str
    busy_timeout_ms: int
    engine: Callable[[], Any]


class _Driver:
    """A raw connection with the same settings as db.engine gives SQLAlchemy's."""

    def __init__(self, url: str, busy_timeout_ms: int, write: bool) -> None:
        self.dialect = "sqlite" if url.startswith("sqlite:") else "postgresql"
        self.sql = STATEMENTS[self.dialect]
        if self.dialect == "sqlite":
            import sqlite3

            self.errors = (sqlite3.Error,)
            self.conn = sqlite3.connect(
                _sqlite_path(url), timeout=busy_timeout_ms / 1000, isolation_level=None
            )
            for pragma in (
                "journal_mode=WAL",
                f"busy_timeout={int(busy_timeout_ms)}",
                "foreign_keys=ON",
                "synchronous=NORMAL",
            ):
                self.conn.execute(f"PRAGMA {pragma}")
            self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        else:
            import psycopg

            self.errors = (psycopg.Error,)
            self.conn = psycopg.connect(
                url.replace("+psycopg", "", 1), connect_timeout=5, application_name="creditctl"
            )

    def time(self, moment: datetime) -> Any:
        if self.dialect == "sqlite":
            return moment.astimezone(UTC).strftime(_SQLITE_TIME)
        return moment

    def one(self, name: str, params: dict[str, Any]) -> tuple | None:
        sql, constants = self.sql[name]
        return self.conn.execute(sql, {**constants, **params}).fetchone()

    def run(self, name: str, params: dict[str, Any]) -> None:
        sql, constants = self.sql[name]
        self.conn.execute(sql, {**constants, **params})

    def commit(self) -> None:
        self.conn.execute("COMMIT") if self.dialect == "sqlite" else self.conn.commit()

    def close(self) -> None:
        """Close, rolling back whatever was not committed."""
        try:
            if self.dialect == "sqlite" and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self.conn.close()


def _sqlite_path(url: str) -> str:
    path = url.split(":///", 1)[1]
    if not path or "?" in url or not Path(path).expanduser().is_file():
        raise LookupError(url)
    return path


def _open(url: str, busy_timeout_ms: int, write: bool) -> _Driver | None:
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgres://")):
        return None
    try:
        return _Driver(url, busy_timeout_ms, write)
    except Exception:  # noqa: BLE001 - the full path will explain what is wrong
        return None


def _due(moment: Any, now: Any) -> bool:
    return moment is not None and moment <= now


def deduct(
    database: Database,
    user: str,
    amount: int,
    *,
    actor: str,
    policy: Policy,
    ref: str | None = None,
    key: str | None = None,
) -> Posting:
    """Spend `amount` credits: on the bare driver when it can, else through creditctl.ledger."""
    now = utcnow()
    posting = _try_deduct(
        database, user, amount, actor=actor, policy=policy, now=now, ref=ref, key=key
    )
    if posting is None:
        from creditctl.ledger.spending import deduct as full_deduct

        posting = full_deduct(
            database.engine(), user, amount, actor=actor, policy=policy, ref=ref, key=key, now=now
        )
    return posting


def balance(database: Database, user: str) -> Balance:
    """The user's balance: on the bare driver when nothing needs sweeping."""
    now = utcnow()
    result = _try_balance(database, user, now=now)
    if result is None:
        from creditctl.ledger.balances import balance as full_balance

        result = full_balance(database.engine(), user, now=now)
    return result


def _try_deduct(
    database: Database,
    user: str,
    amount: int,
    *,
    actor: str,
    policy: Policy,
    now: datetime,
    ref: str | None,
    key: str | None,
) -> Posting | None:
    """The common deduct, committed; or None, having written nothing."""
    driver = _open(database.url, database.busy_timeout_ms, write=True)
    if driver is None:
        return None
    try:
        try:
            posting = _deduct(
                driver, user, amount, actor=actor, policy=policy, now=now, ref=ref, key=key
            )
        except driver.errors:
            # A key race, a missing table, a lock timeout: the full path decides and explains.
            return None
        if posting is not None:
            # Not inside the try: after a failed COMMIT the outcome is unknown, and a blind
            # retry on the full path could spend twice.
            driver.commit()
        return posting
    finally:
        driver.close()


def _deduct(
    driver: _Driver,
    user: str,
    amount: int,
    *,
    actor: str,
    policy: Policy,
    now: datetime,
    ref: str | None,
    key: str | None,
) -> Posting | None:
    by_email = "@" in user
    who = user.strip().lower() if by_email else user.strip()
    stamp = driver.time(now)
    if key is not None:
        state = driver.one("state_by_email" if by_email else "state_by_id", {"who": who})
        if state is None or driver.one("find_key", {"uid": state[0], "key": key}):
            return None
    taken = driver.one(
        "take_by_email" if by_email else "take_by_id",
        {
            "who": who,
            "n": amount,
            "now": stamp,
            "usage_cutoff": driver.time(policy.usage_cutoff(now)),
        },
    )
    if taken is not None:
        user_id, balance_after, held, plan = taken
        driver.run("draw", {"uid": user_id, "n": amount, "now": stamp, "prefer": -1})
        spent, description, unlimited = -amount, "usage", False
    else:
        state = driver.one("state_by_email" if by_email else "state_by_id", {"who": who})
        if (
            state is None
            or state[7] is not None
            or _due(state[5], stamp)
            or _due(state[6], stamp)
            or state[8] is not None
        ):
            return None  # refused, stale, or overdue: the full path says why
        user_id, plan = state[0], state[2]
        balance_after, held = driver.one("lock_user", {"uid": user_id})
        spent, description, unlimited = 0, "usage (unlimited plan)", True
    (entry_id,) = driver.one(
        "insert_entry",
        {
            "user_id": user_id,
            "type": "usage",
            "amount": spent,
            "balance_after": balance_after,
            "quantity": amount,
            "description": description,
            "actor": actor,
            "reference": ref,
            "idempotency_key": key,
            "request_hash": fingerprint("deduct", amount, ref, "") if key else None,
            "created_at": stamp,
        },
    )
    return Posting(
        entry_id,
        user_id,
        "usage",
        spent,
        balance_after,
        extra={"held": held, "plan": plan, "unlimited": unlimited, "available": balance_after},
    )


def _try_balance(database: Database, user: str, *, now: datetime) -> Balance | None:
    """The balance when nothing needs sweeping; or None."""
    driver = _open(database.url, database.busy_timeout_ms, write=False)
    if driver is None:
        return None
    try:
        by_email = "@" in user
        state = driver.one(
            "state_by_email" if by_email else "state_by_id",
            {"who": user.strip().lower() if by_email else user.strip()},
        )
        stamp = driver.time(now)
        if state is None or _due(state[5], stamp) or _due(state[6], stamp):
            return None
        user_id, email, plan, available, held, _, _, credits, _ = state
        return Balance(user_id, email, plan, credits is None, available, held)
    except driver.errors:
        return None
    finally:
        driver.close()
