"""creditctl.ledger.rules's executor on a SQLAlchemy connection: the full path.

It runs the same statement texts as the bare driver (creditctl/ledger/_fastsql.py) inside the
caller's SQLAlchemy transaction, so errors arrive as SQLAlchemy's (for run_write to retry a key
race and translate the rest), and it can sweep, which the bare driver leaves to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy.engine import Connection

from creditctl.db.connection_settings import sqlite_moment, sqlite_time
from creditctl.ledger._fastsql import STATEMENTS
from creditctl.ledger.rules import SweepFirst
from creditctl.ledger.sweep import sweep_user


class SqlExecutor:
    """With sweeps=False (in a read-only transaction) it raises SweepFirst instead of sweeping."""

    def __init__(self, conn: Connection, *, sweeps: bool = True) -> None:
        self.conn = conn
        self.sweeps = sweeps
        self.sqlite = conn.dialect.name == "sqlite"
        self.statements = STATEMENTS[conn.dialect.name]

    def one(self, name: str, params: dict[str, Any]) -> Mapping[str, Any] | None:
        sql, constants = self.statements[name]
        result = self.conn.exec_driver_sql(sql, {**constants, **params} if constants else params)
        return cast("Mapping[str, Any] | None", result.mappings().first())

    def run(self, name: str, params: dict[str, Any]) -> None:
        sql, constants = self.statements[name]
        self.conn.exec_driver_sql(sql, {**constants, **params} if constants else params)

    def time(self, moment: datetime) -> Any:
        return sqlite_time(moment) if self.sqlite else moment

    def moment(self, stored: Any) -> datetime:
        return sqlite_moment(stored) if self.sqlite else stored

    def sweep(self, user_id: str, now: datetime) -> None:
        if not self.sweeps:
            raise SweepFirst("the sweep needs a write transaction")
        sweep_user(self.conn, user_id, now=now)
