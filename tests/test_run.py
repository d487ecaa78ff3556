"""`creditctl run`: the installed command around real child processes, on both databases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from helpers import cli_env, creditctl_executable, new_user, one_error_line, run_creditctl

from creditctl.clock import utcnow
from creditctl.ledger import balances, history, holds
from creditctl.ledger.audit import verify

pytestmark = pytest.mark.slow


@pytest.fixture
def user(engine, policy):
    new_user(engine, policy, "u1")
    return "u1"


def entries_of(engine, types=("hold", "capture", "release", "usage")) -> list[tuple]:
    return [
        (e["type"], e["amount"], e["quantity"], e["reference"])
        for e in history.history(engine, "u1")
        if e["type"] in types
    ]


def test_command_that_succeeds_is_charged(user, engine, database_url, tmp_path):
    result = run_creditctl(
        "run", "u1", "5", "--ref", "render-1", "--", "true", database_url=database_url, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert entries_of(engine) == [("hold", -5, 5, "render-1"), ("capture", 0, 5, "render-1")]
    assert balances.balance(engine, "u1").available == 100
    assert holds.open_holds(engine) == []


def test_command_output_and_exit_code_pass_through(user, engine, database_url, tmp_path):
    script = "import sys; print('rendered'); sys.stderr.write('warn\\n'); sys.exit(7)"
    result = run_creditctl(
        "run",
        "u1",
        "5",
        "--",
        sys.executable,
        "-c",
        script,
        database_url=database_url,
        cwd=tmp_path,
    )
    assert (result.returncode, result.stdout) == (7, "rendered\n")
    assert "warn" in result.stderr
    assert balances.balance(engine, "u1").available == 105


def test_command_that_fails_is_not_charged(user, engine, database_url, tmp_path):
    result = run_creditctl("run", "u1", "5", "--", "false", database_url=database_url, cwd=tmp_path)
    assert result.returncode == 1
    assert entries_of(engine) == [("hold", -5, 5, None), ("release", 5, 0, None)]
    assert (balances.balance(engine, "u1").available, balances.balance(engine, "u1").held) == (
        105,
        0,
    )


def test_refused_run_does_not_start_the_command(user, engine, database_url, tmp_path):
    marker = tmp_path / "ran"
    result = run_creditctl(
        "run", "u1", "106", "--", "touch", str(marker), database_url=database_url, cwd=tmp_path
    )
    assert result.returncode == 3
    assert one_error_line(result.stderr).startswith(
        "error: insufficient credits: u1 has 105 available, 106 needed;"
    )
    assert not marker.exists()
    assert entries_of(engine) == []


def test_missing_program_is_not_charged(user, engine, database_url, tmp_path):
    result = run_creditctl(
        "run",
        "u1",
        "5",
        "--",
        str(tmp_path / "no-such-program"),
        database_url=database_url,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "nothing was charged" in one_error_line(result.stderr)
    assert balances.balance(engine, "u1").available == 105
    assert holds.open_holds(engine) == []


def _interactive() -> None:
    """As from a terminal: SIGINT delivered, even when the test runner was started with it
    ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_run(database_url, tmp_path, child: str, *extra: str) -> subprocess.Popen:
    """`creditctl run u1 5 -- sh -c CHILD`; returns once CHILD has run its STARTED step."""
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [
            creditctl_executable(),
            "run",
            "u1",
            "5",
            *extra,
            "--",
            "sh",
            "-c",
            child.replace("STARTED", f"touch {started}"),
        ],
        cwd=tmp_path,
        env=cli_env(database_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_interactive,
    )
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    return proc


def test_sigterm_is_forwarded_and_the_hold_released(user, engine, database_url, tmp_path):
    proc = _start_run(database_url, tmp_path, "STARTED; exec sleep 60")
    assert balances.balance(engine, "u1").held == 5
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert entries_of(engine) == [("hold", -5, 5, None), ("release", 5, 0, None)]
    assert balances.balance(engine, "u1").available == 105
    assert verify(engine)["ok"]


@pytest.mark.parametrize("code", [0, 9])
def test_interrupted_child_that_exits_by_itself_is_not_charged(
    user, engine, database_url, tmp_path, code
):
    proc = _start_run(
        database_url,
        tmp_path,
        f"sleep 60 >/dev/null 2>&1 & trap 'kill $!; exit {code}' INT; STARTED; wait",
    )
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == code
    assert balances.balance(engine, "u1").available == 105
    assert holds.open_holds(engine) == []


def test_sigkilled_owner_hold_comes_back_after_its_ttl(user, engine, database_url, tmp_path):
    proc = _start_run(database_url, tmp_path, "STARTED; exec sleep 60", "--ttl", "2m")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    os.killpg(proc.pid, signal.SIGKILL)  # the orphaned child; creditctl could not forward
    proc.stdout.close()
    proc.stderr.close()
    (hold,) = holds.open_holds(engine, user="u1")
    assert (hold["amount"], balances.balance(engine, "u1").held) == (5, 5)
    before_ttl = utcnow() + timedelta(minutes=1)
    assert balances.balance(engine, "u1", now=before_ttl).available == 100
    after_ttl = utcnow() + timedelta(minutes=2, seconds=1)
    current = balances.balance(engine, "u1", now=after_ttl)
    assert (current.available, current.held) == (105, 0)
    assert entries_of(engine)[-1] == ("release", 5, 0, None)
    assert verify(engine)["ok"]


def test_hold_that_expires_while_the_command_runs_is_charged_once(
    user, engine, database_url, tmp_path
):
    result = run_creditctl(
        "run",
        "u1",
        "5",
        "--ttl",
        "1s",
        "--ref",
        "slow",
        "--",
        "sleep",
        "1.5",
        database_url=database_url,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert balances.balance(engine, "u1").available == 100
    usage = [e for e in entries_of(engine) if e[0] in ("usage", "capture")]
    assert usage == [("usage", -5, 5, "slow")]
    (entry,) = [e for e in history.history(engine, "u1") if e["type"] == "usage"]
    assert result.stderr.splitlines() == [
        f"warning: hold {entry['idempotency_key'].removeprefix('run-hold-')} expired before the "
        f"command finished; charged its 5 credits with a new deduct (entry {entry['id']}). "
        "Use a longer --ttl"
    ]
    assert verify(engine)["ok"]


def test_signal_ignored_at_start_stays_ignored(user, engine, database_url, tmp_path):
    """Started under nohup-like conditions, creditctl neither forwards nor counts SIGHUP."""

    def ignore_hup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    started = tmp_path / "started"
    proc = subprocess.Popen(
        [creditctl_executable(), "run", "u1", "5", "--", "sh", "-c", f"touch {started}; sleep 1"],
        cwd=tmp_path,
        env=cli_env(database_url, tmp_path),
        preexec_fn=ignore_hup,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not started.exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert balances.balance(engine, "u1").available == 100


def test_run_json_free_output_and_account_afterwards(user, engine, database_url, tmp_path):
    assert (
        run_creditctl(
            "run", "u1", "3", "--", "true", database_url=database_url, cwd=tmp_path
        ).returncode
        == 0
    )
    shown = run_creditctl(
        "credits", "balance", "u1", "--json", database_url=database_url, cwd=tmp_path
    )
    assert json.loads(shown.stdout)["available"] == 102
