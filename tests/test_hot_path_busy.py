"""A lock not granted in time reads the same on every write: `credits deduct` on the fast
path, on the full path and `credits grant` all say it in one sentence, with one error class.

The lock is held for real: another process holds SQLite's write lock, another PostgreSQL
session holds the user's row; creditctl waits 200 ms for it, then gives up.
"""

from __future__ import annotations

import json

import pytest
from helpers import new_user, one_error_line, run_creditctl, snapshot
from lock_holders import write_lock

WRITES = {
    "deduct, fast path": (("credits", "deduct", "u1", "1", "--json"), {"CREDITCTL_FASTPATH": "1"}),
    "deduct, full path": (("credits", "deduct", "u1", "1", "--json"), {"CREDITCTL_FASTPATH": "0"}),
    "grant": (("credits", "grant", "u1", "1", "--reason", "x", "--json"), {}),
}


@pytest.fixture
def user(engine, policy):
    new_user(engine, policy, "u1")


def _refusals(database_url, tmp_path):
    seen = {}
    for name, (args, env) in WRITES.items():
        with write_lock(database_url) as wait_briefly:
            result = run_creditctl(
                *args, database_url=database_url, cwd=tmp_path, env={**env, **wait_briefly}
            )
        assert result.returncode == 7, (name, result.stderr)
        seen[name] = (one_error_line(result.stderr), json.loads(result.stdout))
    return seen


def test_a_lock_not_granted_in_time_is_one_refusal_for_every_write(
    user, engine, database_url, tmp_path
):
    before = snapshot(engine)
    seen = _refusals(database_url, tmp_path)
    assert len(set(json.dumps(refusal) for refusal in seen.values())) == 1, seen
    line, data = seen["grant"]
    assert (data["kind"], data["exit_code"], f"error: {data['error']}") == ("DatabaseBusy", 7, line)
    if database_url.startswith("sqlite"):
        assert line == (
            f"error: database {database_url} stayed locked by another writer for longer than "
            "database.busy_timeout_ms; nothing was changed; try again, or raise "
            "database.busy_timeout_ms"
        )
    else:
        assert " gave up waiting for a lock (" in line
    assert snapshot(engine) == before
