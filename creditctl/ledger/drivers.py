"""The ledger's executor on a bare driver connection (sqlite3, psycopg 3), and its transactions.

Used by the render scripts' fast path (a connection of its own, no SQLAlchemy import) and by
the in-process deduct (a connection borrowed from the engine's pool). It runs the statements
rendered into creditctl/ledger/_fastsql.py, reads the URL as the engine does
(creditctl.config.database_url) and connects with the engine's own settings
(creditctl.db.connection_settings).

What a transaction here does when the database fails:
- a lock not granted in time (SQLite's busy timeout, PostgreSQL's lock_timeout) is reported
  at once, exit 7, in the words every other write uses (creditctl.db.failures): waiting a
  second time on another path would double the configured wait;
- a failed COMMIT is reported as an unknown outcome, exit 7: the write may have landed, so
  it is never retried blindly (a retry with the same idempotency key is safe);
- anything else before COMMIT, and the executor's own StepAside, roll back and raise
  StepAside: nothing was written, and the full path (SQLAlchemy) decides and explains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from creditctl.config.database_url import DatabaseUrl, parse_database_url
from creditctl.db.connection_settings import (
    POSTGRES_CONNECT_ARGS,
    configure_sqlite,
    sqlite_connect_args,
    sqlite_moment,
    sqlite_time,
)
from creditctl.db.failures import busy_failure
from creditctl.errors import ConfigError, CreditctlError, DatabaseUnavailable
from creditctl.ledger._fastsql import STATEMENTS
from creditctl.ledger.rules import StepAside, SweepFirst

T = TypeVar("T")


class DriverExecutor:
    """creditctl.ledger.rules's executor on a DBAPI connection; the caller runs the transaction."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.statements = STATEMENTS[dialect]
        self._last: tuple[datetime | None, str] = (None, "")
        if self.sqlite:
            import sqlite3

            self.cursor = conn.cursor()
            self.cursor.row_factory = sqlite3.Row
        else:
            from psycopg.rows import dict_row

            self.cursor = conn.cursor(row_factory=dict_row)

    def one(self, name: str, params: dict[str, Any]) -> Mapping[str, Any] | None:
        sql, constants = self.statements[name]
        self.cursor.execute(sql, {**constants, **params} if constants else params)
        return self.cursor.fetchone()

    def run(self, name: str, params: dict[str, Any]) -> None:
        sql, constants = self.statements[name]
        self.cursor.execute(sql, {**constants, **params} if constants else params)

    def time(self, moment: datetime) -> Any:
        if not self.sqlite:
            return moment
        if moment is not self._last[0]:  # one deduct stores the same `now` thrice
            self._last = (moment, sqlite_time(moment))
        return self._last[1]

    def moment(self, stored: Any) -> datetime:
        return sqlite_moment(stored) if self.sqlite else stored

    def sweep(self, user_id: str, now: datetime) -> None:
        raise SweepFirst("the sweep runs on the full path")


# --- connections -------------------------------------------------------------------------------


def connect(url: str, busy_timeout_ms: int) -> tuple[Any, DatabaseUrl]:
    """A new connection with the engine's settings, and the URL as read; StepAside for a URL
    (or a missing file, or a refused connection) the full path should handle and explain."""
    try:
        parsed = parse_database_url(url)
    except ConfigError:
        raise StepAside("the full path explains the URL") from None
    if parsed.dialect == "sqlite":
        import sqlite3

        path = parsed.sqlite_file
        if path is None or not Path(path).expanduser().is_file():
            raise StepAside(url)
        try:
            conn = sqlite3.connect(
                Path(path).expanduser(),
                isolation_level=None,
                **sqlite_connect_args(busy_timeout_ms),
            )
            configure_sqlite(conn, busy_timeout_ms)
        except sqlite3.Error as exc:
            raise busy_failure(exc, parsed.shown) or StepAside(str(exc)) from None
        return conn, parsed
    if parsed.libpq is None:
        raise StepAside(url)
    import psycopg

    try:
        pg = psycopg.connect(parsed.libpq, **POSTGRES_CONNECT_ARGS)
    except psycopg.Error as exc:
        raise StepAside(str(exc)) from None
    return pg, parsed


def transaction(
    conn: Any,
    dialect: str,
    operation: Callable[[DriverExecutor], T],
    *,
    write: bool,
    shown: str,
    outcome_unknown: Callable[[], CreditctlError] | None = None,
) -> T:
    """Run `operation` in one transaction on `conn` and commit it if `write`; see the module
    docstring for what a failure becomes (`shown`: the URL, as errors name it). The connection
    is left idle, never mid-transaction."""
    errors = _driver_errors(dialect)
    try:
        if dialect == "sqlite":
            # Writers take the write lock up front, as the engine's writers do.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        result = operation(DriverExecutor(conn, dialect))
    except (CreditctlError, StepAside):
        _rollback(conn, errors)
        raise
    except errors as exc:
        _rollback(conn, errors)
        raise busy_failure(exc, shown) or StepAside(str(exc)) from None
    if not write:
        _rollback(conn, errors)
        return result
    try:
        conn.execute("COMMIT") if dialect == "sqlite" else conn.commit()
    except errors:
        _rollback(conn, errors)
        raise (outcome_unknown or _outcome_unknown)() from None
    return result


def on_url(
    url: str,
    busy_timeout_ms: int,
    operation: Callable[[DriverExecutor], T],
    *,
    write: bool,
    outcome_unknown: Callable[[], CreditctlError] | None = None,
) -> T:
    """`operation` in one transaction on a connection of its own, closed afterwards."""
    conn, parsed = connect(url, busy_timeout_ms)
    try:
        return transaction(
            conn,
            parsed.dialect,
            operation,
            write=write,
            shown=parsed.shown,
            outcome_unknown=outcome_unknown,
        )
    finally:
        conn.close()


def on_engine(
    engine: Any,
    operation: Callable[[DriverExecutor], T],
    *,
    write: bool,
    outcome_unknown: Callable[[], CreditctlError] | None = None,
) -> T:
    """`operation` in one transaction on a connection borrowed from a SQLAlchemy engine's pool
    (set up by the engine's own connect hooks), given back afterwards."""
    dialect = engine.dialect.name
    try:
        pooled = engine.raw_connection()
    except Exception as exc:  # noqa: BLE001 - the full path connects again and explains
        raise StepAside(str(exc)) from None
    conn = pooled.driver_connection
    shown = engine.url.render_as_string(hide_password=True)  # as the engine's own errors name it
    try:
        return transaction(
            conn, dialect, operation, write=write, shown=shown, outcome_unknown=outcome_unknown
        )
    finally:
        if getattr(conn, "broken", False) or getattr(conn, "closed", False):
            pooled.invalidate()  # a connection the server dropped goes, not back to the pool
        pooled.close()


# --- failures ----------------------------------------------------------------------------------


def _driver_errors(dialect: str) -> tuple[type[Exception], ...]:
    if dialect == "sqlite":
        import sqlite3

        return (sqlite3.Error,)
    import psycopg

    return (psycopg.Error,)


def _rollback(conn: Any, errors: tuple[type[Exception], ...]) -> None:
    try:
        if getattr(conn, "in_transaction", False):  # sqlite3
            conn.execute("ROLLBACK")
        elif hasattr(conn, "pgconn"):  # psycopg
            conn.rollback()
    except errors:
        pass  # a dead connection has nothing to roll back; the server discards the transaction


def _outcome_unknown() -> DatabaseUnavailable:
    return DatabaseUnavailable(
        "the database failed while committing: the change may or may not have been recorded; "
        "check before trying again"
    )
