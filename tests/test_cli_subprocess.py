"""The installed `creditctl` as a separate process: exit codes, --json, and contention."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
from helpers import cli_env, creditctl_executable, empty_user, one_error_line, run_creditctl

from creditctl.ledger import balances
from creditctl.ledger.audit import verify
from creditctl.ledger.policy import Policy

pytestmark = pytest.mark.slow


def test_fresh_sqlite_file_session(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.db"

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_creditctl(*args, database_url=url, cwd=tmp_path)

    init = run("init", "--json")
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["plans"] == {
        "free": "added",
        "pro": "added",
        "pro_plus": "added",
        "ultimate": "added",
    }
    assert json.loads(run("db", "current", "--json").stdout)["up_to_date"] is True
    added = run("users", "add", "Alice@Example.com", "--id", "u1", "--json")
    assert added.returncode == 0 and json.loads(added.stdout)["balance"] == 105
    deducted = run("credits", "deduct", "alice@example.com", "100", "--key", "r1", "--json")
    assert deducted.returncode == 0, deducted.stderr
    payload = json.loads(deducted.stdout)
    assert {k: payload[k] for k in ("user_id", "available", "held", "plan")} == {
        "user_id": "u1",
        "available": 5,
        "held": 0,
        "plan": "free",
    }
    again = json.loads(run("credits", "deduct", "u1", "100", "--key", "r1", "--json").stdout)
    assert (again["entry_id"], again["replayed"]) == (payload["entry_id"], True)

    codes = {
        ("credits", "deduct", "u1", "6"): 3,
        ("credits", "deduct", "u1", "0"): 2,
        ("credits", "deduct", "nobody", "1"): 4,
        ("users", "add", "ALICE@example.com"): 5,
        ("credits", "deduct", "u1", "1", "--key", "r1"): 5,
        ("credits", "adjust", "u1", "-1"): 2,
        ("credits", "check", "u1", "5"): 0,
        ("credits", "check", "u1", "6"): 3,
    }
    for args, code in codes.items():
        result = run(*args)
        assert result.returncode == code, (args, result.stderr)
        if code:
            one_error_line(result.stderr)
    assert run("audit", "verify").returncode == 0
    missing_dir = run_creditctl(
        "users", "list", database_url=f"sqlite:///{tmp_path}/no/x.db", cwd=tmp_path
    )
    assert missing_dir.returncode == 7
    one_error_line(missing_dir.stderr)
    assert run("--help").returncode == 0 and "Example" in run("--help").stdout


def test_json_of_balance_check_and_reserve(engine, database_url, tmp_path):
    empty_user(engine, Policy(), "u1", 20)
    balance = json.loads(
        run_creditctl(
            "credits", "balance", "u1", "--json", database_url=database_url, cwd=tmp_path
        ).stdout
    )
    assert {k: balance[k] for k in ("user_id", "available", "held", "plan")} == {
        "user_id": "u1",
        "available": 20,
        "held": 0,
        "plan": "free",
    }
    hold = run_creditctl(
        "credits", "reserve", "u1", "8", "--json", database_url=database_url, cwd=tmp_path
    )
    assert hold.returncode == 0
    held = json.loads(hold.stdout)
    assert (held["available"], held["held"]) == (12, 8) and held["expires_at"].endswith("Z")
    check = run_creditctl(
        "credits", "check", "u1", "13", "--json", database_url=database_url, cwd=tmp_path
    )
    assert check.returncode == 3
    assert json.loads(check.stdout)["available"] == 12


PROCESSES, CALLS, CREDITS = 8, 5, 24


def test_eight_cli_processes_never_oversell(engine, database_url, tmp_path):
    empty_user(engine, Policy(), "hot", CREDITS)
    loop = f'for i in $(seq {CALLS}); do "$0" credits deduct hot 1 >/dev/null 2>&1; echo $?; done'
    procs = [
        subprocess.Popen(
            ["sh", "-c", loop, creditctl_executable()],
            cwd=tmp_path,
            env=cli_env(database_url, tmp_path),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    codes = Counter()
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        codes.update(int(line) for line in out.split())
    assert codes == {0: CREDITS, 3: PROCESSES * CALLS - CREDITS}
    assert balances.balance(engine, "hot").available == 0
    assert verify(engine)["ok"]
