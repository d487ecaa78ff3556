"""Another party holding the lock a write needs, for real, and the settings that make the
write give up waiting for it soon."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

SQLITE_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def write_lock(database_url: str, user_id: str = "u1") -> Iterator[dict[str, str]]:
    """Until the block ends: on SQLite another process holds the file's write lock, on
    PostgreSQL another session holds the user's row. Yields the environment under which
    creditctl waits 200 ms for it (SQLite's busy timeout, PostgreSQL's lock_timeout)."""
    if database_url.startswith("sqlite"):
        with _sqlite_holder(database_url.removeprefix("sqlite:///")):
            yield {"CREDITCTL_BUSY_TIMEOUT_MS": "200"}
        return
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
        yield {"PGOPTIONS": "-c lock_timeout=200"}
        holder.rollback()


@contextmanager
def _sqlite_holder(path: str) -> Iterator[None]:
    holder = subprocess.Popen(
        [sys.executable, "-c", SQLITE_HOLDER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.communicate("\n", timeout=30)
