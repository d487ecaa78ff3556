"""Fresh databases per test on SQLite and, in the same run, on PostgreSQL.

Each backend is migrated once per session into a template (a file for SQLite,
a template database for PostgreSQL) and copied per test. Without a reachable
PostgreSQL and without CI, the PostgreSQL half is skipped with a notice; with
CI=true it must run.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditctl.config.settings import load_settings

PG_ADMIN_URL = os.environ.get("CREDITCTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_ran: set[str] = set()
_pg_skip_reason: list[str] = []


def _pg_admin():
    import psycopg

    return psycopg.connect(
        PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True, connect_timeout=3
    )


def _pg_available() -> bool:
    try:
        with _pg_admin():
            return True
    except Exception as exc:  # noqa: BLE001 - any failure means no server for us
        _pg_skip_reason.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return False


PG_AVAILABLE = _pg_available()


def pg_url(database: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


def _prepare(url: str) -> None:
    from creditctl.accounts.plans import load_plans
    from creditctl.db.engine import make_engine
    from creditctl.db.migrate import upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
        load_plans(engine, load_settings(environ={}).plans)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _prepare(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"creditctl_tmpl_{uuid.uuid4().hex[:10]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    _prepare(pg_url(name))
    yield name
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backend_params():
    marks = []
    if not PG_AVAILABLE and not IN_CI:
        marks = [
            pytest.mark.skip(
                reason=f"PostgreSQL not reachable at {PG_ADMIN_URL}: PostgreSQL tests skipped"
            )
        ]
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=marks),
    ]


@pytest.fixture(params=_backend_params())
def backend(request) -> str:
    return request.param


@pytest.fixture
def database_url(backend, tmp_path, request) -> Iterator[str]:
    """A migrated database with the default plans, fresh for this test."""
    _ran.add(backend)
    if backend == "sqlite":
        path = tmp_path / "creditctl.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"creditctl_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield pg_url(name)
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory) -> Iterator[str]:
    """One localstripe for the whole session (Stripe and webhook tests); tests flush it."""
    from servers import localstripe

    with localstripe(Path(tmp_path_factory.mktemp("localstripe"))) as url:
        yield url


@pytest.fixture
def engine(database_url):
    from creditctl.db.engine import make_engine

    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def policy():
    from creditctl.ledger.policy import Policy

    return Policy.from_settings(load_settings(environ={}))


class Cli:
    """Runs creditctl in-process through Typer's runner against one database."""

    def __init__(self, database_url: str, cwd: Path) -> None:
        self.env = {
            "CREDITCTL_DATABASE_URL": database_url,
            "CREDITCTL_OPERATOR": "tester",
            "CREDITCTL_CONFIG": "",
            "CREDITCTL_ENV_FILE": str(cwd / "no.env"),
        }
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None):
        from creditctl.cli.app import app

        return self.runner.invoke(app, list(args), env={**self.env, **(env or {})})


@pytest.fixture
def cli(database_url, tmp_path, monkeypatch) -> Cli:
    monkeypatch.chdir(tmp_path)
    return Cli(database_url, tmp_path)


def pytest_collection_modifyitems(config, items):
    if IN_CI and not PG_AVAILABLE:
        reason = _pg_skip_reason[0] if _pg_skip_reason else "unknown"
        raise pytest.UsageError(
            f"CI=true but PostgreSQL at {PG_ADMIN_URL} is not reachable: {reason}"
        )


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    ran = ", ".join(sorted(_ran)) or "none"
    terminalreporter.write_sep("=", f"database backends exercised: {ran}")
    if not PG_AVAILABLE:
        terminalreporter.write_line(
            f"NOTICE: PostgreSQL tests were skipped: {PG_ADMIN_URL} did not answer "
            f"({_pg_skip_reason[0] if _pg_skip_reason else 'unknown'}). Set CI=true to "
            "make this a failure.",
            yellow=True,
        )


def pytest_report_header(config):
    state = "reachable" if PG_AVAILABLE else "NOT reachable (PostgreSQL tests skipped)"
    return [
        f"creditctl backends: sqlite, postgresql at {PG_ADMIN_URL} {state}",
        f"python {sys.version.split()[0]}",
    ]
