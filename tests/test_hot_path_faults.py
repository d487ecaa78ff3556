"""The deduct path when the database fails: one line, exit 7, and never a double spend.

The faults are real: another process holds SQLite's write lock past the busy timeout; a
PostgreSQL backend is terminated from a second connection while it is inside COMMIT (held
there by a deferred trigger waiting on an advisory lock the test owns, so the moment is
deterministic). SQLite has no equivalent of a connection killed mid-COMMIT from outside.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager

import psycopg
import pytest
from helpers import cli_env, creditctl_executable, new_user, one_error_line, snapshot

from creditctl.db.engine import make_engine
from creditctl.errors import DatabaseBusy
from creditctl.ledger import fastpath, history, spending
from creditctl.ledger.balances import balance

PATHS = pytest.mark.parametrize("fast", ["1", "0"], ids=["fast-path", "full-path"])
LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""
PAUSE_AT_COMMIT = """
CREATE FUNCTION pause_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER pause_at_commit AFTER INSERT ON ledger_entries
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pause_at_commit();
"""


@pytest.fixture
def user(engine, policy):
    new_user(engine, policy, "u1")


@contextmanager
def write_lock(database_url):
    """Another process holding SQLite's write lock until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, database_url.removeprefix("sqlite:///")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.fixture
def sqlite_only(backend):
    if backend != "sqlite":
        pytest.skip("a busy timeout is SQLite's; PostgreSQL writers wait on the user's row")


def _deduct(database_url, tmp_path, fast, *args):
    env = cli_env(database_url, tmp_path, {"CREDITCTL_BUSY_TIMEOUT_MS": "300"})
    env["CREDITCTL_FASTPATH"] = fast
    return subprocess.Popen(
        [creditctl_executable(), "credits", "deduct", "u1", "5", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@PATHS
def test_a_lock_held_past_the_busy_timeout_is_one_line_and_exit_7(
    sqlite_only, user, engine, database_url, tmp_path, fast
):
    before = snapshot(engine)
    with write_lock(database_url):
        out, err = _deduct(database_url, tmp_path, fast, "--key", "k1").communicate(timeout=60)
    assert one_error_line(err) == (
        f"error: database {database_url} stayed locked by another writer for longer than "
        "database.busy_timeout_ms; nothing was changed; try again, or raise "
        "database.busy_timeout_ms"
    )
    assert out == ""
    assert snapshot(engine) == before


def test_the_fast_path_waits_one_busy_timeout_not_two(sqlite_only, user, database_url, policy):
    """The lock timeout is reported where it happened: the full path is never tried after it."""

    def no_engine():
        pytest.fail("the fast path waited again on the full path")

    database = fastpath.Database(database_url, 200, no_engine)
    in_process = make_engine(database_url, busy_timeout_ms=200)
    with write_lock(database_url):
        with pytest.raises(DatabaseBusy) as refused:
            fastpath.deduct(database, "u1", 1, actor="t", policy=policy)
        assert refused.value.exit_code == 7
        with pytest.raises(DatabaseBusy, match="stayed locked by another writer"):
            spending.deduct(in_process, "u1", 1, actor="t", policy=policy)
    in_process.dispose()


@pytest.fixture
def paused_commit(backend, database_url, user):
    """COMMITs of new ledger entries wait on an advisory lock this connection holds."""
    if backend != "postgresql":
        pytest.skip("a connection killed inside COMMIT needs a server to kill it")
    admin = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
    admin.execute(PAUSE_AT_COMMIT)
    admin.execute("SELECT pg_advisory_lock(4242)")
    yield admin
    admin.execute("SELECT pg_advisory_unlock_all()")
    admin.execute("DROP TRIGGER IF EXISTS pause_at_commit ON ledger_entries")
    admin.close()


def _backend_in_commit(admin, deadline: float = 60) -> int:
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        row = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'creditctl' AND query = 'COMMIT' AND wait_event = 'advisory'"
        ).fetchone()
        if row:
            return row[0]
        time.sleep(0.02)
    raise AssertionError("no creditctl backend ever waited inside COMMIT")


@PATHS
def test_a_connection_killed_during_commit_is_an_unknown_outcome(
    paused_commit, engine, database_url, tmp_path, fast
):
    deduct = _deduct(database_url, tmp_path, fast, "--key", "k1")
    pid = _backend_in_commit(paused_commit)
    paused_commit.execute("SELECT pg_terminate_backend(%s)", (pid,))
    out, err = deduct.communicate(timeout=60)
    assert deduct.returncode == 7
    assert one_error_line(err) == (
        "error: the database connection failed while committing the deduct for u1, so it may "
        "or may not have been recorded; retrying with the same key (k1) is safe: it is spent "
        "at most once"
    )
    assert out == ""
    # Nothing was retried behind the user's back; the retry they were told is safe, is.
    paused_commit.execute("DROP TRIGGER pause_at_commit ON ledger_entries")
    for _ in range(2):
        again = _deduct(database_url, tmp_path, fast, "--key", "k1")
        assert again.wait(timeout=60) == 0, again.stderr.read()
    assert [e["type"] for e in history.history(engine, "u1")].count("usage") == 1
    assert balance(engine, "u1").available == 100


def test_an_unkeyed_deduct_says_how_to_find_out(paused_commit, database_url, tmp_path):
    deduct = _deduct(database_url, tmp_path, "1")
    paused_commit.execute("SELECT pg_terminate_backend(%s)", (_backend_in_commit(paused_commit),))
    _, err = deduct.communicate(timeout=60)
    assert deduct.returncode == 7
    assert one_error_line(err).endswith(
        "may or may not have been recorded; check `creditctl credits history u1` before "
        "trying again"
    )
