"""Every database.url the configuration accepts is one the fast path runs on, and one the
engine reads the same way: the URL is read in one place (creditctl.config.database_url)."""

from __future__ import annotations

import pytest
from helpers import new_user

from creditctl.config.database_url import check_database_url
from creditctl.db.engine import make_engine
from creditctl.ledger import fastpath
from creditctl.ledger.balances import balance as full_balance

SQLITE_SCHEMES = ["sqlite", "sqlite+pysqlite", "SQLITE", "Sqlite+PySqlite"]
POSTGRES_SCHEMES = [
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "POSTGRESQL",
    "Postgres",
    "PostgreSQL+Psycopg",
]


def no_engine():
    pytest.fail("the fast path stepped aside to the full path (the engine was asked for)")


def _forms(database_url: str) -> list[str]:
    scheme, _, rest = database_url.partition("://")
    schemes = SQLITE_SCHEMES if scheme == "sqlite" else POSTGRES_SCHEMES
    forms = [f"{each}://{rest}" for each in schemes]
    return [*forms, f"  {forms[0]}  "]  # the configuration strips surrounding spaces


def test_every_accepted_form_runs_on_the_fast_path(engine, policy, database_url):
    new_user(engine, policy, "u1")
    forms = _forms(database_url)
    for spent, url in enumerate(forms, start=1):
        assert check_database_url(url) == url
        fast = fastpath.Database(url, 5000, no_engine)
        assert fastpath.deduct(fast, "u1", 1, actor="t", policy=policy).available == 105 - spent
        assert fastpath.check(fast, "u1", 1, policy=policy).ok
        assert fastpath.balance(fast, "u1").available == 105 - spent
    # ... and the engine reads each form as the same database.
    for url in forms:
        other = make_engine(url, create=False)
        try:
            assert full_balance(other, "u1").available == 105 - len(forms)
        finally:
            other.dispose()


def test_a_sqlite_url_with_options_goes_to_the_engine(engine, policy, database_url, backend):
    """Control: options only the engine reads (sqlite3.connect's) step aside, and the guard
    sees it."""
    if backend != "sqlite":
        pytest.skip("SQLite's URL options")
    new_user(engine, policy, "u1")
    fast = fastpath.Database(f"{database_url}?timeout=5", 5000, no_engine)
    with pytest.raises(pytest.fail.Exception):
        fastpath.balance(fast, "u1")
