"""Engines for SQLite (a WAL file, writers take the lock up front) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from creditctl.config.database_url import not_a_url, parse_database_url
from creditctl.db.connection_settings import (
    POSTGRES_CONNECT_ARGS,
    configure_sqlite,
    sqlite_connect_args,
)
from creditctl.db.failures import database_failure
from creditctl.errors import DatabaseUnavailable, SchemaOutOfDate

READ_ONLY = "creditctl_read_only"


def normalise_url(url: str) -> sa.URL:
    """The URL as creditctl.config.database_url reads it (PostgreSQL's routed to psycopg 3),
    for SQLAlchemy; a URL that reading refuses is a ConfigError, as when the settings load."""
    try:
        return make_url(parse_database_url(url).sqlalchemy)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise not_a_url(url) from None


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
    engine = sa.create_engine(url, connect_args=sqlite_connect_args(busy_timeout_ms))

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
