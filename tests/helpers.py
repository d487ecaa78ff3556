"""Small helpers shared by the ledger, holds and CLI tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from creditctl.accounts.users import add_user
from creditctl.ledger.policy import Policy

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)
TABLES = ("users", "grants", "holds", "hold_allocations", "ledger_entries", "audit_log")


def creditctl_executable() -> str:
    """The installed console script: the venv's, else whichever is on PATH."""
    beside = Path(sys.executable).with_name("creditctl")
    found = str(beside) if beside.is_file() else shutil.which("creditctl")
    assert found, "the creditctl console script is not installed"
    return found


def new_user(
    engine,
    policy: Policy,
    user_id: str,
    *,
    plan: str = "free",
    email: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    return add_user(
        engine,
        email or f"{user_id}@example.com",
        user_id=user_id,
        plan=plan,
        actor="tester",
        policy=policy,
        now=now,
    )


def empty_user(
    engine, policy: Policy, user_id: str, credits: int, *, now: datetime | None = None
) -> None:
    """A free-plan user holding exactly `credits` non-expiring credits."""
    from creditctl.ledger.corrections import adjust, grant

    new_user(engine, policy, user_id, now=now)
    adjust(engine, user_id, -105, actor="tester", reason="start empty", policy=policy, now=now)
    if credits:
        grant(engine, user_id, credits, actor="tester", reason="test credits", now=now)


def snapshot(engine) -> dict[str, Any]:
    """Row counts of every ledger table and the cached balances: equal means nothing written."""
    with engine.connect() as conn:
        counts = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES
        }
        counts["balances"] = conn.execute(
            sa.text("SELECT id, balance, held FROM users ORDER BY id")
        ).all()
        counts["holds_state"] = conn.execute(
            sa.text("SELECT id, status, captured FROM holds ORDER BY id")
        ).all()
    return counts


def one_error_line(stderr: str) -> str:
    """The single `error: ...` line a refusal prints, with no traceback around it."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {stderr!r}"
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def run_creditctl(
    *args: str, database_url: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run the installed creditctl as a separate process."""
    return subprocess.run(
        [creditctl_executable(), *args],
        cwd=cwd,
        env=cli_env(database_url, cwd, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_env(database_url: str, cwd: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITCTL_", "STRIPE_"))}
    env.update(
        {
            "CREDITCTL_DATABASE_URL": database_url,
            "CREDITCTL_OPERATOR": "tester",
            "CREDITCTL_ENV_FILE": str(cwd / "no.env"),
        }
    )
    env.update(extra or {})
    return env


def parse_json(text: str) -> Any:
    return json.loads(text)


WORKERS = Path(__file__).with_name("workers.py")


def start_workers(worker_args: list[list[str]], go: Path) -> list[subprocess.Popen]:
    """Start one real OS process per argument list; return once all are ready and released."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITCTL_")}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKERS), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args in worker_args
    ]
    for proc in procs:
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read() if proc.poll() else "")
    go.touch()
    return procs


def finish_workers(procs: list[subprocess.Popen], timeout: float = 300) -> list[dict[str, Any]]:
    """Wait for every worker; return each one's result line."""
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        line = [x for x in out.splitlines() if x.startswith("result ")][-1]
        results.append(json.loads(line.removeprefix("result ")))
    return results
