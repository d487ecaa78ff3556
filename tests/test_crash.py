"""Workers killed with SIGKILL mid-burst leave no partial change: every credit is accounted for."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import empty_user, start_workers

from creditctl.clock import utcnow
from creditctl.ledger import balances, holds
from creditctl.ledger.audit import verify
from creditctl.ledger.policy import Policy

pytestmark = pytest.mark.slow
WORKERS = 6
CREDITS = 100_000  # more than a burst can use: the workers are busy when they die


def committed(engine, user_id: str) -> Counter:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT type, count(*) FROM ledger_entries WHERE user_id = :u GROUP BY type"),
            {"u": user_id},
        ).all()
    return Counter(dict(rows))


def test_sigkill_mid_burst_loses_no_credit(engine, database_url, tmp_path):
    empty_user(engine, Policy(), "victim", CREDITS)
    go = tmp_path / "go"
    procs = start_workers([["burst", database_url, "victim", str(go)] for _ in range(WORKERS)], go)
    # Kill each worker once it has committed a few operations, one after another, so the
    # others are still writing: no timing is asserted, only that the kills land mid-burst.
    reported = Counter()
    for proc in procs:
        for _ in range(5):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            reported[line.split()[0]] += 1
        proc.send_signal(signal.SIGKILL)
    for proc in procs:
        # Through the same buffered reader as above (communicate() would skip its buffer).
        out = proc.stdout.read()
        assert proc.wait(timeout=60) == -signal.SIGKILL
        proc.stderr.close()
        proc.stdout.close()
        reported.update(line.split()[0] for line in out.splitlines() if line.strip())
    result = verify(engine)
    assert result["ok"], result["problems"]

    # What a worker reported is committed; at most one more per worker committed unreported.
    entries = committed(engine, "victim")
    assert entries["usage"] >= reported["deducted"]
    assert entries["hold"] >= reported["reserved"]
    assert entries["capture"] >= reported["captured"]
    assert entries["usage"] + entries["hold"] <= (
        reported["deducted"] + reported["reserved"] + WORKERS
    )
    with engine.connect() as conn:
        allocated = conn.execute(
            sa.text(
                "SELECT h.status, coalesce(sum(a.amount), 0) FROM holds h LEFT JOIN "
                "hold_allocations a ON a.hold_id = h.id WHERE h.user_id = 'victim' "
                "GROUP BY h.status"
            )
        ).all()
        orphans = conn.execute(
            sa.text(
                "SELECT count(*) FROM holds h WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e "
                "WHERE e.hold_id = h.id AND e.type = 'hold')"
            )
        ).scalar_one()
    assert orphans == 0, "a hold exists without its ledger entry: a half-done reserve"
    held_now = dict(allocated).get("open", 0)

    spent = _spent(engine)
    current = balances.balance(engine, "victim")
    assert current.held == held_now
    assert spent + current.held + current.available == CREDITS

    # The dead workers' open holds come back once their time to live has passed.
    later = utcnow() + timedelta(minutes=2)
    holds.expire(engine, now=later)
    after = balances.balance(engine, "victim", now=later)
    assert holds.open_holds(engine, user="victim") == []
    assert (after.held, after.available) == (0, CREDITS - spent)
    assert verify(engine)["ok"]


def _spent(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT coalesce(sum(CASE WHEN type = 'usage' THEN -amount "
                "WHEN type = 'capture' THEN quantity ELSE 0 END), 0) FROM ledger_entries "
                "WHERE user_id = 'victim'"
            )
        ).scalar_one()
