"""The floor: the deduct transaction written by hand for the bare drivers.

Same work as creditctl's deduct: a conditional update of the user row, the
draw from the soonest-expiring grants, one ledger entry, one commit.
Run as a script it is the whole-process floor for `creditctl credits deduct`:
    python bench/raw.py DB_FILE USER AMOUNT
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import UTC, datetime

TAKE = (
    "UPDATE users SET balance = balance - {n} WHERE id = {uid} AND balance >= {n} "
    "AND (next_grant_expiry IS NULL OR next_grant_expiry > {now}) "
    "AND plan IN (SELECT name FROM plans WHERE credits IS NOT NULL) "
    "RETURNING balance"
)
DRAW = (
    "UPDATE grants SET remaining = grants.remaining - CASE WHEN o.before + o.remaining "
    "<= {n} THEN o.remaining ELSE {n} - o.before END FROM (SELECT id, remaining, "
    "SUM(remaining) OVER (ORDER BY expires_at IS NULL, expires_at, id) - remaining AS before "
    "FROM grants WHERE user_id = {uid} AND remaining > 0 AND (expires_at IS NULL OR "
    "expires_at > {now})) AS o WHERE grants.id = o.id AND o.before < {n}"
)
ENTRY = (
    "INSERT INTO ledger_entries (user_id, type, amount, balance_after, quantity, "
    "description, actor, created_at) VALUES ({uid}, 'usage', -{n}, {balance}, {n}, "
    "'usage', 'bench', {now}) RETURNING id"
)


def _sql(template: str, style: str) -> str:
    names = ("n", "uid", "now", "balance")
    marks = {k: (f":{k}" if style == "sqlite" else f"%({k})s") for k in names}
    return template.format(**marks)


SQLITE = {name: _sql(t, "sqlite") for name, t in (("take", TAKE), ("draw", DRAW), ("entry", ENTRY))}
POSTGRES = {name: _sql(t, "pg") for name, t in (("take", TAKE), ("draw", DRAW), ("entry", ENTRY))}


def sqlite_connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def sqlite_deduct(conn: sqlite3.Connection, user_id: str, amount: int) -> bool:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    params = {"n": amount, "uid": user_id, "now": now}
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute(SQLITE["take"], params).fetchone()
    if row is None:
        conn.execute("ROLLBACK")
        return False
    conn.execute(SQLITE["draw"], params)
    conn.execute(SQLITE["entry"], {**params, "balance": row[0]}).fetchone()
    conn.execute("COMMIT")
    return True


def pg_deduct(conn, user_id: str, amount: int) -> bool:
    params = {"n": amount, "uid": user_id, "now": datetime.now(UTC)}
    with conn.transaction():
        row = conn.execute(POSTGRES["take"], params).fetchone()
        if row is None:
            return False
        conn.execute(POSTGRES["draw"], params)
        conn.execute(POSTGRES["entry"], {**params, "balance": row[0]}).fetchone()
    return True


if __name__ == "__main__":
    path, user, amount = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.exit(0 if sqlite_deduct(sqlite_connect(path), user, amount) else 3)
