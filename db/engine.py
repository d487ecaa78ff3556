"""Engines for SQLite (a WAL file, writers take the lock up front) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from creditctl.db.connection_settings import POSTGRES_CONNECT_ARGS, configure_sqlite
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from creditctl.config.masking import mask_url
from creditctl.errors import CreditctlError, DatabaseBusy, DatabaseUnavailable, SchemaOutOfDate

READ_ONLY = "creditctl_read_only"


def normalise_url(url: str) -> sa.URL:
    """Accept postgres:// and postgresql:// and route them to psycopg 3."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise DatabaseUnavailable(
            f"database.url {mask_url(url)!r} is not a database URL; use "
            "sqlite:///path/to/file.db or postgresql://user@host/db"
        ) from None
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise DatabaseUnavailable(
            f"database.url uses {parsed.get_backend_name()!r}; "
            "creditctl supports sqlite and postgresql"
        )
    return parsed


def make_engine(
    url: str, busy_timeout_ms: int = 30000, create: bool = True, long_lived: bool = False
) -> Engine:
    """An engine for `url`; nothing is connected until first use.

    With create=False a missing SQLite file is an error instead of a new empty database,
    so a mistyped path never leaves a stray file behind. A long-lived process (the daemon)
    checks pooled PostgreSQL connections before use, as the server may have dropped them.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout_ms, create)
    connect_args = dict(POSTGRES_CONNECT_ARGS)
    return sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=long_lived)


def _sqlite_engine(url: sa.URL, busy_timeout_ms: int, create: bool) -> Engine:
    path = url.database
    if not path or path == ":memory:":
        raise DatabaseUnavailable(
            "database.url must name a SQLite file, not an in-memory "
            "database; use sqlite:///path/to/creditctl.db"
        )
    directory = Path(path).expanduser().resolve().parent
    if not directory.is_dir():
        raise DatabaseUnavailable(
            f"database directory {directory} does not exist; create it "
            "or point database.url at an existing directory"
        )
    if not create and not Path(path).expanduser().is_file():
        raise SchemaOutOfDate(
            f"database file {path} does not exist; run `creditctl init` to "
            "create it, or check database.url"
        )
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # The driver's own transaction handling is bypassed so BEGIN is ours to choose.
        configure_sqlite(dbapi_connection, busy_timeout_ms)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front, so two writers never deadlock on an
        # upgrade from a read lock; readers start a plain deferred transaction.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed on success, rolled back on any error."""
    with _translate_connect_errors(engine), engine.begin() as connection:
        yield connection


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction: a consistent snapshot on both databases.

    SQLite's deferred BEGIN keeps one snapshot from the first read; PostgreSQL needs
    REPEATABLE READ for that (READ COMMITTED takes a new snapshot at every statement).
    """
    options: dict[str, object] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    with _translate_connect_errors(engine), engine.connect() as connection:
        connection = connection.execution_options(**options)
        with connection.begin():
            yield connection


@contextmanager
def _translate_connect_errors(engine: Engine) -> Iterator[None]:
    try:
        yield
    except sa.exc.DBAPIError as exc:
        failure = database_failure(exc, engine.url.render_as_string(hide_password=True))
        if failure is None:
            raise
        raise failure from None


def database_failure(exc: BaseException, url: str | None) -> CreditctlError | None:
    """A database's failure as one line and exit code 7; None for what the caller translates
    (a unique key, a check) or does not expect. Takes SQLAlchemy's error or the driver's own."""
    orig = getattr(exc, "orig", None) or exc
    kinds = {kind.__name__ for kind in type(orig).__mro__}
    if "IntegrityError" in kinds:
        return None
    where = f"database {mask_url(url)}" if url else "the database"
    if kinds & {"OperationalError", "ProgrammingError"} and _is_missing_schema(orig):
        return SchemaOutOfDate(
            f"{where} has no creditctl tables or an old schema; run `creditctl init` first"
        )
    text = str(orig).strip()
    reason = text.splitlines()[0] if text else type(orig).__name__
    code = getattr(orig, "sqlite_errorname", None) or getattr(orig, "sqlstate", None) or ""
    failure = _sqlite_failure(code, where, reason) or _postgres_failure(code, where, reason)
    if failure is None and "OperationalError" in kinds and _is_unreachable(orig):
        failure = DatabaseUnavailable(_unreachable_message(where, reason))
    if failure is None and getattr(exc, "statement", "") is None and "DatabaseError" in kinds:
        # Raised while connecting (an option libpq does not know, a bad sslmode): no statement.
        failure = DatabaseUnavailable(_unreachable_message(where, reason))
    return failure


def _sqlite_failure(code: str, where: str, reason: str) -> CreditctlError | None:
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return DatabaseBusy(
            f"{where} stayed locked by another writer for longer than database.busy_timeout_ms; "
            "nothing was changed; try again, or raise database.busy_timeout_ms"
        )
    if code == "SQLITE_FULL":
        return DatabaseUnavailable(
            f"{where} cannot grow: the disk is full ({reason}); nothing was changed; "
            "free some space and try again"
        )
    if code.startswith("SQLITE_IOERR"):
        return DatabaseUnavailable(
            f"{where} could not be read or written ({reason}, {code}); check the disk and "
            "the file, then try again"
        )
    if code == "SQLITE_NOTADB":
        return DatabaseUnavailable(
            f"{where} is not a SQLite database ({reason}); point database.url at a creditctl "
            "database, or at a new file and run `creditctl init`"
        )
    if code.startswith("SQLITE_CORRUPT"):
        return DatabaseUnavailable(f"{where} is damaged ({reason}); restore it from a backup")
    if code.startswith("SQLITE_READONLY"):
        return DatabaseUnavailable(
            f"{where} cannot be written ({reason}); nothing was changed; check the permissions "
            "of the file and of its directory"
        )
    return None


def _postgres_failure(code: str, where: str, reason: str) -> CreditctlError | None:
    if code == "55P03":  # lock_not_available: lock_timeout ran out
        return DatabaseBusy(
            f"{where} gave up waiting for a lock ({reason}); nothing was changed; try again, "
            "or raise the role's lock_timeout"
        )
    if code == "57014":  # query_canceled: statement_timeout, or an operator's cancel
        return DatabaseBusy(
            f"{where} canceled the statement ({reason}); nothing was changed; try again, "
            "or raise the role's statement_timeout"
        )
    if code in {"40001", "40P01"}:  # serialization failure, deadlock
        return DatabaseBusy(
            f"{where} gave up a transaction ({reason}); nothing was changed; try again"
        )
    if code.startswith("53"):  # insufficient resources: disk full, out of memory, connections
        return DatabaseUnavailable(
            f"{where} is out of resources ({reason}); nothing was changed; try again later"
        )
    if code == "25006":  # read_only_sql_transaction: a standby
        return DatabaseUnavailable(
            f"{where} is read-only ({reason}); point database.url at the primary server"
        )
    if code.startswith(("08", "28", "3D", "57P")):  # connection, authorization, shutdown
        return DatabaseUnavailable(_unreachable_message(where, reason))
    return None


def _is_missing_schema(orig: BaseException) -> bool:
    text = str(orig).lower()
    return (
        "no such table" in text
        or "no such column" in text
        or ("relation" in text and "does not exist" in text)
        or ("column" in text and "does not exist" in text)
    )


def _is_unreachable(orig: BaseException) -> bool:
    text = str(orig).lower()
    return any(
        part in text
        for part in (
            "connection refused",
            "could not connect",
            "connection failed",
            "unable to open",
            "timeout expired",
            "does not exist",
            "no such host",
            "name or service not known",
            "password authentication failed",
            "could not translate host",
            # a pooled connection the server dropped (restart, failover, terminated backend)
            "terminating connection",
            "server closed the connection",
            "connection is closed",
            "consuming input failed",
        )
    )


def _unreachable_message(where: str, reason: str) -> str:
    return f"{where} is unreachable ({reason}); check database.url or CREDITCTL_DATABASE_URL"
