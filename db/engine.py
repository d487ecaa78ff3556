"""Engines for SQLite (a WAL file, writers take the lock up front) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from creditctl.config.masking import mask_url
from creditctl.errors import DatabaseUnavailable, SchemaOutOfDate

READ_ONLY = "creditctl_read_only"


def normalise_url(url: str) -> sa.URL:
    """Accept postgres:// and postgresql:// and route them to psycopg 3."""
    try:
        parsed = make_url(url)
    except Exception:
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
    connect_args = {"connect_timeout": 5, "application_name": "creditctl"}
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
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

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
    """One read-only transaction (a consistent snapshot)."""
    with _translate_connect_errors(engine), engine.connect() as connection:
        connection = connection.execution_options(**{READ_ONLY: True})
        with connection.begin():
            yield connection


@contextmanager
def _translate_connect_errors(engine: Engine) -> Iterator[None]:
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        if _is_missing_schema(exc):
            url = engine.url.render_as_string(hide_password=True)
            raise SchemaOutOfDate(
                f"database {url} has no creditctl tables or an old "
                "schema; run `creditctl init` first"
            ) from None
        if isinstance(exc, sa.exc.OperationalError) and _is_unreachable(exc):
            raise DatabaseUnavailable(_unreachable_message(engine, exc)) from None
        raise


def _is_missing_schema(exc: sa.exc.DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return (
        "no such table" in text
        or "no such column" in text
        or ("relation" in text and "does not exist" in text)
        or ("column" in text and "does not exist" in text)
    )


def _is_unreachable(exc: sa.exc.OperationalError) -> bool:
    text = str(exc.orig).lower()
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


def _unreachable_message(engine: Engine, exc: sa.exc.OperationalError) -> str:
    url = mask_url(engine.url.render_as_string(hide_password=True))
    reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "no answer"
    return f"database {url} is unreachable ({reason}); check database.url or CREDITCTL_DATABASE_URL"
