"""How creditctl connects, in one place: the engine and the ledger's bare-driver path share it.

No SQLAlchemy here: the render scripts' fast path imports this module to open the very
connection the engine would, without paying for SQLAlchemy's import. Which URLs are accepted,
and what each side connects with, is creditctl.config.database_url's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# How SQLAlchemy's SQLite DateTime stores a moment: text that sorts in time order.
# tests/test_hot_path_executors.py checks it matches SQLAlchemy's own bind processing.
SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
POSTGRES_CONNECT_ARGS: dict[str, Any] = {"connect_timeout": 5, "application_name": "creditctl"}


def sqlite_connect_args(busy_timeout_ms: int) -> dict[str, Any]:
    """sqlite3.connect's arguments: it waits as long for a lock while opening the file."""
    return {"timeout": busy_timeout_ms / 1000}


def sqlite_pragmas(busy_timeout_ms: int) -> tuple[str, ...]:
    """Every SQLite connection's settings: WAL (readers never wait for the writer), the busy
    timeout a writer waits for the lock, foreign keys, and fsync at checkpoints only."""
    return (
        "journal_mode=WAL",
        f"busy_timeout={int(busy_timeout_ms)}",
        "foreign_keys=ON",
        "synchronous=NORMAL",
    )


def configure_sqlite(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    """Apply the settings to a new sqlite3 connection; BEGIN is left to the caller to choose."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in sqlite_pragmas(busy_timeout_ms):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(SQLITE_TIME_FORMAT)


def sqlite_moment(text: str) -> datetime:
    return datetime.strptime(text, SQLITE_TIME_FORMAT).replace(tzinfo=UTC)
