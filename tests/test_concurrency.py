"""Many real OS processes against one user: no credit is ever spent twice, no hold leaks."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import empty_user, finish_workers, start_workers

from creditctl.clock import utcnow
from creditctl.ledger import balances, holds
from creditctl.ledger.audit import verify

pytestmark = pytest.mark.slow


def ledger_totals(engine, user_id: str) -> dict[str, int]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT "
                " coalesce(sum(CASE WHEN type = 'usage' THEN -amount END), 0) AS deducted,"
                " coalesce(sum(CASE WHEN type = 'usage' THEN 1 END), 0) AS deducts,"
                " coalesce(sum(CASE WHEN type = 'capture' THEN quantity END), 0) AS captured "
                "FROM ledger_entries WHERE user_id = :u"
            ),
            {"u": user_id},
        ).one()
        held = conn.execute(
            sa.text(
                "SELECT coalesce(sum(amount), 0) FROM holds WHERE user_id = :u AND status = 'open'"
            ),
            {"u": user_id},
        ).scalar_one()
        granted = conn.execute(
            sa.text("SELECT coalesce(sum(amount), 0) FROM grants WHERE user_id = :u"),
            {"u": user_id},
        ).scalar_one()
    return {**row._asdict(), "held_in_open_holds": held, "granted": granted}


def test_eight_processes_deduct_exactly_the_balance(engine, database_url, tmp_path):
    from creditctl.ledger.policy import Policy

    empty_user(engine, Policy(), "hot", 2000)
    go = tmp_path / "go"
    procs = start_workers(
        [
            ["deduct", database_url, "hot", str(go), "500", "fast" if i % 2 else "full"]
            for i in range(8)
        ],
        go,
    )
    results = finish_workers(procs)
    assert sum(r["ok"] for r in results) == 2000
    assert sum(r["refused"] for r in results) == 2000
    current = balances.balance(engine, "hot")
    assert (current.available, current.held) == (0, 0)
    totals = ledger_totals(engine, "hot")
    assert (totals["deducts"], totals["deducted"]) == (2000, 2000)
    result = verify(engine)
    assert result["ok"], result["problems"]


def test_mixed_holds_and_deducts_never_oversell_or_leak(engine, database_url, tmp_path):
    from creditctl.ledger.policy import Policy

    empty_user(engine, Policy(), "busy", 300)
    go = tmp_path / "go"
    procs = start_workers(
        [["mixed", database_url, "busy", str(go), "120", str(seed)] for seed in range(8)], go
    )
    results = finish_workers(procs)
    spent_reported = sum(r["deducted"] + r["captured"] for r in results)
    totals = ledger_totals(engine, "busy")
    assert totals["deducted"] + totals["captured"] == spent_reported
    assert sum(r["refused"] for r in results) > 0, "the workers never ran out: no contention"
    now = balances.balance(engine, "busy")
    # Every credit is spent, held, or available; none twice.
    assert spent_reported + now.held + now.available == totals["granted"] - 105
    assert now.held == totals["held_in_open_holds"]
    assert verify(engine)["ok"]
    left_open = sum(r["left_open"] for r in results)
    assert len(holds.open_holds(engine, user="busy")) == left_open
    swept = holds.expire(engine, now=utcnow() + timedelta(minutes=11))
    assert swept["entries"] >= left_open
    after = balances.balance(engine, "busy", now=utcnow() + timedelta(minutes=11))
    assert holds.open_holds(engine, user="busy") == []
    assert (after.available, after.held) == (300 - spent_reported, 0)
    assert verify(engine)["ok"]


def test_one_key_sent_by_eight_processes_at_once_is_spent_once(engine, database_url, tmp_path):
    from creditctl.ledger.policy import Policy

    empty_user(engine, Policy(), "retry", 100)
    go = tmp_path / "go"
    procs = start_workers(
        [
            ["keyed", database_url, "retry", str(go), "render-7", "fast" if i % 2 else "full"]
            for i in range(8)
        ],
        go,
    )
    results = finish_workers(procs)
    assert len({r["entry_id"] for r in results}) == 1
    assert sorted(r["replayed"] for r in results) == [False] + [True] * 7
    assert ledger_totals(engine, "retry")["deducts"] == 1
    assert balances.balance(engine, "retry").available == 95
    assert verify(engine)["ok"]
