"""A fresh migrated database per round, copied from the session's template like `database_url`."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def pg_admin_url() -> str:
    """The PostgreSQL server the tests use (tests/conftest.py reads the same variable)."""
    url = os.environ.get("CREDITCTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    return url.replace("postgresql+psycopg", "postgresql")


def _admin_execute(statement: str) -> None:
    import psycopg

    with psycopg.connect(pg_admin_url(), autocommit=True, connect_timeout=5) as admin:
        admin.execute(statement)


class RoundDatabases:
    """Hands out fresh databases for one test and drops the PostgreSQL ones afterwards."""

    def __init__(self, backend: str, template: Path | str, directory: Path) -> None:
        self.backend, self.template, self.directory = backend, template, directory
        self.created: list[str] = []

    def fresh(self) -> str:
        if self.backend == "sqlite":
            path = self.directory / f"round-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(self.template, path)
            return f"sqlite:///{path}"
        name = f"creditctl_fault_{uuid.uuid4().hex[:12]}"
        _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return f"{pg_admin_url().rsplit('/', 1)[0]}/{name}"

    def drop_all(self) -> None:
        for name in self.created:
            _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
