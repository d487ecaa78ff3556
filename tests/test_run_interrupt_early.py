"""`creditctl run` interrupted before its command starts: the command never runs, nothing held."""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from helpers import cli_env, creditctl_executable, new_user

from creditctl.ledger import balances, holds
from creditctl.ledger.audit import verify


@pytest.mark.slow
def test_sigterm_while_the_hold_is_being_taken(engine, policy, database_url, backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("holds the SQLite write lock to keep `run` waiting inside its reserve")
    new_user(engine, policy, "u1")
    marker = tmp_path / "ran"
    blocker = sqlite3.connect(database_url.split(":///", 1)[1], isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # `run` now waits for the lock inside reserve
    process = subprocess.Popen(
        [creditctl_executable(), "run", "u1", "5", "--", "touch", str(marker)],
        env=cli_env(database_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_open(process, database_url.split(":///", 1)[1])
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert not marker.exists()
    assert holds.open_holds(engine, user="u1") == []
    assert balances.balance(engine, "u1").available == 105
    assert verify(engine)["ok"]


def _wait_until_open(process: subprocess.Popen, path: str) -> None:
    """Until `run` has the database file open: it opens it only in its reserve, after its
    signal handlers are in, and then waits there for the lock."""
    fds = Path(f"/proc/{process.pid}/fd")
    while not any(_points_to(fd, path) for fd in fds.iterdir()):
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)


def _points_to(fd: Path, path: str) -> bool:
    try:
        return os.readlink(fd) == str(Path(path).resolve())
    except OSError:  # closed meanwhile
        return False
