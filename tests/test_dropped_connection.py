"""A PostgreSQL connection the server dropped is reported as unreachable, then recovered."""

import pytest
import sqlalchemy as sa

from creditctl.db.engine import make_engine, read
from creditctl.errors import DatabaseUnavailable


def _terminate_own_backends(url):
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_a_dropped_pooled_connection(database_url, backend):
    if backend != "postgresql":
        pytest.skip("a server-side disconnect is a PostgreSQL matter")
    plain = make_engine(database_url)
    with read(plain) as conn:
        conn.execute(sa.text("SELECT 1"))
    _terminate_own_backends(database_url)
    with pytest.raises(DatabaseUnavailable), read(plain) as conn:
        conn.execute(sa.text("SELECT 1"))
    with read(plain) as conn:  # the pool dropped the dead connection: the next one works
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    plain.dispose()

    daemon_engine = make_engine(database_url, long_lived=True)
    with read(daemon_engine) as conn:
        conn.execute(sa.text("SELECT 1"))
    _terminate_own_backends(database_url)
    with read(daemon_engine) as conn:  # checked before use: no error at all
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    daemon_engine.dispose()
