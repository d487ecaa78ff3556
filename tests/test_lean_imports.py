"""The render scripts' hot path imports no Stripe SDK, scheduler or web framework, and
`credits check`, `deduct` and `balance` no SQLAlchemy either (they run on the bare driver)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from helpers import cli_env, new_user
from lock_holders import write_lock

from creditctl.ledger.holds import reserve

HEAVY = ("stripe", "apscheduler", "starlette", "fastapi", "uvicorn", "aiohttp")
# reserve, capture, release and run still go through SQLAlchemy: only these three do not.
BARE = (*HEAVY, "sqlalchemy", "sqlmodel", "alembic")

# Runs creditctl in this interpreter, then reports every module it imported.
HARNESS = """
import json, sys
for name in sys.argv[2].split(","):
    if name:
        __import__(name)
sys.argv = ["creditctl", *json.loads(sys.argv[1])]
from creditctl.cli.app import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
sys.stderr.write("MODULES " + json.dumps({"code": code, "modules": sorted(sys.modules)}) + "\\n")
"""


def imported(
    args: list[str],
    database_url: str,
    cwd,
    preimport: str = "",
    env: dict | None = None,
    code: int = 0,
) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", HARNESS, json.dumps(args), preimport],
        cwd=cwd,
        env=cli_env(database_url, cwd, env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = [x for x in result.stderr.splitlines() if x.startswith("MODULES ")][-1]
    report = json.loads(line.removeprefix("MODULES "))
    assert report["code"] == code, (args, result.stderr)
    return {m.split(".")[0] for m in report["modules"]}


@pytest.fixture
def hot_path_user(engine, policy):
    new_user(engine, policy, "u1")
    first = reserve(engine, "u1", 1, ttl=timedelta(minutes=5), actor="t", policy=policy)
    second = reserve(engine, "u1", 1, ttl=timedelta(minutes=5), actor="t", policy=policy)
    return first.hold_id, second.hold_id


def test_hot_path_commands_stay_lean(hot_path_user, database_url, tmp_path):
    capture_id, release_id = hot_path_user
    commands = [
        (["credits", "check", "u1", "1"], BARE),
        (["credits", "check", "u1@example.com", "1", "--json"], BARE),
        (["credits", "deduct", "u1", "1", "--json"], BARE),
        (["credits", "deduct", "u1@example.com", "1", "--key", "k1"], BARE),
        (["credits", "deduct", "u1@example.com", "1", "--key", "k1"], BARE),  # a replay
        (["credits", "balance", "u1", "--json"], BARE),
        (["credits", "balance", "U1@example.com"], BARE),
        (["credits", "reserve", "u1", "1", "--json"], HEAVY),
        (["credits", "capture", str(capture_id)], HEAVY),
        (["credits", "release", str(release_id)], HEAVY),
        (["run", "u1", "1", "--", sys.executable, "-c", "pass"], HEAVY),
    ]
    for args, heavy_modules in commands:
        heavy = sorted(set(heavy_modules) & imported(args, database_url, tmp_path))
        assert heavy == [], f"creditctl {' '.join(args)} imported {heavy}"


def test_a_refused_or_busy_deduct_stays_lean(hot_path_user, database_url, tmp_path):
    """Reporting the refusal loads no more than the deduct: too few credits (exit 3), and a
    lock not granted in time (exit 7, worded by creditctl.db.failures)."""
    args = ["credits", "deduct", "u1", "1000", "--json"]
    assert not set(BARE) & imported(args, database_url, tmp_path, code=3)
    with write_lock(database_url) as wait_briefly:
        args = ["credits", "deduct", "u1", "1", "--json"]
        modules = imported(args, database_url, tmp_path, env=wait_briefly, code=7)
    assert not set(BARE) & modules


def test_the_full_path_switch_does_load_sqlalchemy(hot_path_user, database_url, tmp_path):
    """Control: with the fast path switched off the same command loads SQLAlchemy."""
    off = {"CREDITCTL_FASTPATH": "0"}
    assert "sqlalchemy" in imported(
        ["credits", "deduct", "u1", "1"], database_url, tmp_path, env=off
    )


def test_the_check_sees_an_import(hot_path_user, database_url, tmp_path):
    """Control: the harness does report a heavy module when one is imported."""
    pytest.importorskip("stripe")
    modules = imported(["credits", "balance", "u1"], database_url, tmp_path, preimport="stripe")
    assert "stripe" in modules
