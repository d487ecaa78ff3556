"""`credits check` applies deduct's rules and says why, and writes nothing, on both paths."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from helpers import new_user, one_error_line, snapshot

from creditctl.clock import utcnow
from creditctl.ledger import balances, corrections, fastpath, holds

PATHS = pytest.mark.parametrize("fast", ["1", "0"], ids=["fast-path", "full-path"])


@pytest.fixture
def lapsed(engine, policy):
    """u1 with two expired grants, an expired hold drawn from them and from a live grant, and
    a hold still open: nothing swept yet."""
    start = utcnow() - timedelta(hours=3)
    new_user(engine, policy, "u1", now=start)  # 100 plan credits (a month) + 5 welcome
    for credits, lasts in ((10, 1), (7, 2)):
        corrections.grant(
            engine,
            "u1",
            credits,
            actor="t",
            reason="promo",
            expires_at=start + timedelta(hours=lasts),
            now=start,
        )
    # 20 credits: the 10 and the 7 that expire first, then 3 of the plan's.
    holds.reserve(engine, "u1", 20, ttl=timedelta(minutes=30), actor="t", policy=policy, now=start)
    holds.reserve(engine, "u1", 5, ttl=timedelta(days=1), actor="t", policy=policy, now=start)
    return engine


@PATHS
def test_check_writes_nothing_and_counts_what_expired_as_swept(lapsed, cli, fast):
    env = {"CREDITCTL_FASTPATH": fast}
    before = snapshot(lapsed)
    assert before["holds_state"] and before["balances"] == [("u1", 97, 25)]
    yes = cli("credits", "check", "u1", "100", "--json", env=env)
    assert yes.exit_code == 0, yes.stderr
    assert {k: json.loads(yes.stdout)[k] for k in ("available", "held", "ok")} == {
        "available": 100,
        "held": 5,
        "ok": True,
    }
    no = cli("credits", "check", "u1@example.com", "101", env=env)
    assert no.exit_code == 3
    assert "has 100 available, 101 needed" in one_error_line(no.stderr)
    assert snapshot(lapsed) == before
    # What check counted is what the sweep then writes.
    swept = balances.balance(lapsed, "u1")
    assert (swept.available, swept.held) == (100, 5)
    assert snapshot(lapsed) != before


def test_the_fast_check_does_not_step_aside_for_expired_credits(lapsed, database_url, policy):
    def no_engine():
        pytest.fail("check stepped aside to the full path")

    database = fastpath.Database(database_url, 5000, no_engine)
    verdict = fastpath.check(database, "u1", 1, policy=policy)
    assert (verdict.ok, verdict.balance.available, verdict.balance.held) == (True, 100, 5)


@PATHS
@pytest.mark.parametrize(
    ("user", "amount", "code"),
    [
        ("nobody", "1", 4),
        ("nobody@example.com", "1", 4),
        ("u1", "106", 3),
        ("U1@example.com", "106", 3),
        ("u9", "1000000", 0),
        ("u1", "105", 0),
    ],
)
def test_check_answers_what_deduct_does(cli, engine, policy, fast, user, amount, code):
    new_user(engine, policy, "u1")
    new_user(engine, policy, "u9", plan="ultimate")
    env = {"CREDITCTL_FASTPATH": fast}
    check = cli("credits", "check", user, amount, env=env)
    before = snapshot(engine)
    deduct = cli("credits", "deduct", user, amount, env=env)
    assert (check.exit_code, deduct.exit_code) == (code, code)
    if code:
        assert one_error_line(check.stderr) == one_error_line(deduct.stderr)
        assert snapshot(engine) == before
