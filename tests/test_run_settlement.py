"""`creditctl run` settling its hold when the hold changed meanwhile or the database fails.

The faults are real: the command settles the hold itself through the installed CLI; a second
process holds the SQLite write lock past the busy timeout; PostgreSQL refuses connections to
the database and its backends are terminated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import psycopg
import pytest
from helpers import cli_env, creditctl_executable, new_user, run_creditctl

from creditctl.db.engine import make_engine
from creditctl.errors import ChargeUnsettled
from creditctl.ledger import balances, history, holds
from creditctl.ledger.audit import verify
from creditctl.runner import Retry, charge

pytestmark = pytest.mark.slow
PG_ADMIN_URL = os.environ.get("CREDITCTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class Outage:
    """The database stops answering writers until `end()`: a lock on SQLite, no connections
    on PostgreSQL."""

    def __init__(self, backend: str, database_url: str) -> None:
        self.backend, self.url = backend, database_url
        self.holder: subprocess.Popen | None = None
        self.name = database_url.rsplit("/", 1)[1]

    def start(self) -> None:
        if self.backend == "sqlite":
            self.holder = subprocess.Popen(
                [sys.executable, "-c", LOCK_HOLDER, self.url.split(":///", 1)[1]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self.holder.stdout.readline().strip() == "locked"
            return
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (self.name,),
            )

    def end(self) -> None:
        if self.holder is not None:
            self.holder.communicate("done\n", timeout=30)
            self.holder = None
        elif self.backend == "postgresql":
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def outage(backend, database_url):
    fault = Outage(backend, database_url)
    yield fault
    fault.end()


@pytest.fixture
def user(engine, policy):
    new_user(engine, policy, "u1")
    return "u1"


def charges(engine) -> list[tuple]:
    return [
        (e["type"], e["amount"], e["quantity"])
        for e in history.history(engine, "u1")
        if e["type"] in ("usage", "capture")
    ]


def settle_from_inside(verb: str) -> list[str]:
    """A command that finds its own hold and settles it with the installed CLI."""
    script = (
        "import json, subprocess, sys\n"
        f"exe = {creditctl_executable()!r}\n"
        "out = subprocess.run([exe, 'holds', 'list', '--user', 'u1', '--json'],"
        " capture_output=True, text=True, check=True).stdout\n"
        "(hold,) = json.loads(out)\n"
        f"subprocess.run([exe, 'credits', {verb!r}, str(hold['hold_id'])], check=True)\n"
    )
    return [sys.executable, "-c", script]


def test_hold_captured_by_the_command_itself_is_not_charged_again(
    user, engine, database_url, tmp_path
):
    result = run_creditctl(
        "run",
        "u1",
        "5",
        "--",
        *settle_from_inside("capture"),
        database_url=database_url,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (hold_id,) = {e["hold_id"] for e in history.history(engine, "u1") if e["hold_id"]}
    assert charges(engine) == [("capture", 0, 5)]
    assert balances.balance(engine, "u1").available == 100
    assert (
        f"warning: hold {hold_id} was already captured (5 of 5 credits) while the command ran, "
        "e.g. by the command itself; run charged nothing more"
    ) in result.stderr.splitlines()
    assert verify(engine)["ok"]


def test_hold_released_by_the_command_is_charged_with_a_new_deduct(
    user, engine, database_url, tmp_path
):
    result = run_creditctl(
        "run",
        "u1",
        "5",
        "--",
        *settle_from_inside("release"),
        database_url=database_url,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert charges(engine) == [("usage", -5, 5)]
    assert balances.balance(engine, "u1").available == 100
    (usage,) = [e for e in history.history(engine, "u1") if e["type"] == "usage"]
    hold_id = usage["idempotency_key"].removeprefix("run-hold-")
    assert (
        f"warning: hold {hold_id} was released; charged its 5 credits with a new deduct "
        f"(entry {usage['id']})"
    ) in result.stderr.splitlines()
    assert verify(engine)["ok"]


def test_capture_that_meets_a_failing_database_exits_8_and_leaves_the_hold_open(
    user, engine, database_url, tmp_path, outage
):
    started, failing = tmp_path / "started", tmp_path / "failing"
    wait = f"touch {started}; while [ ! -e {failing} ]; do sleep 0.05; done"
    proc = subprocess.Popen(
        [creditctl_executable(), "run", "u1", "5", "--ref", "r-8", "--", "sh", "-c", wait],
        cwd=tmp_path,
        env=_env(database_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    outage.start()
    failing.touch()
    _, err = proc.communicate(timeout=120)
    outage.end()
    engine.dispose()  # its pooled PostgreSQL connections were terminated
    assert proc.returncode == 8, err
    (hold,) = holds.open_holds(engine, user="u1")
    line = err.strip()
    assert line.startswith("error: the command succeeded but its charge could not be recorded ("), (
        err
    )
    assert line.endswith(
        f"); hold {hold['hold_id']} still holds 5 credits of u1: run `creditctl credits capture "
        f"{hold['hold_id']}` before it expires at {hold['expires_at']}, or the command goes "
        "unpaid"
    ), err
    assert "Traceback" not in err
    assert (balances.balance(engine, "u1").available, balances.balance(engine, "u1").held) == (
        100,
        5,
    )
    captured = run_creditctl(
        "credits", "capture", str(hold["hold_id"]), database_url=database_url, cwd=tmp_path
    )
    assert captured.returncode == 0, captured.stderr
    assert charges(engine) == [("capture", 0, 5)]
    assert verify(engine)["ok"]


def _env(database_url, tmp_path):
    return cli_env(database_url, tmp_path, {"CREDITCTL_BUSY_TIMEOUT_MS": "200"})


def _hold(engine, policy):
    return holds.reserve(
        engine, "u1", 5, ttl=timedelta(minutes=30), actor="tester", policy=policy, ref="r"
    )


def test_capture_is_retried_until_the_database_answers(user, database_url, policy, outage):
    engine = make_engine(database_url, busy_timeout_ms=100)
    hold = _hold(engine, policy)
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        outage.end()  # the database comes back after the first failed try

    outage.start()
    warnings = charge(
        engine, hold, actor="tester", policy=policy, ref="r", retry=Retry(sleep=pause)
    )
    assert (warnings, len(pauses)) == ([], 1)
    assert charges(engine) == [("capture", 0, 5)]
    assert holds.open_holds(engine) == []
    assert verify(engine)["ok"]
    engine.dispose()


def test_retries_are_bounded_and_the_hold_stays_open(user, database_url, policy, outage):
    engine = make_engine(database_url, busy_timeout_ms=100)
    hold = _hold(engine, policy)
    pauses: list[float] = []
    outage.start()
    with pytest.raises(ChargeUnsettled) as refused:
        charge(
            engine,
            hold,
            actor="tester",
            policy=policy,
            ref="r",
            retry=Retry(attempts=4, sleep=pauses.append),
        )
    outage.end()
    engine.dispose()
    assert pauses == [0.25, 0.5, 1.0]
    assert refused.value.exit_code == 8
    assert refused.value.details["hold_id"] == hold.hold_id
    (still_open,) = holds.open_holds(engine, user="u1")
    assert (still_open["hold_id"], still_open["amount"]) == (hold.hold_id, 5)
    assert charges(engine) == []
    engine.dispose()
