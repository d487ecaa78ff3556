"""The ledger domain on both databases: grants, usage order, adjustments, reversals, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import T0, empty_user, new_user, snapshot

from creditctl.errors import (
    AlreadyReversed,
    Conflict,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    UnknownUser,
)
from creditctl.ledger import balances, corrections, history, spending, sweep
from creditctl.ledger.audit import verify
from creditctl.ledger.holds import reserve


def grants_of(engine, user_id: str) -> list[tuple[str, int, int]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT source, amount, remaining FROM grants WHERE user_id = :u ORDER BY id"
                ),
                {"u": user_id},
            )
        ]


def test_new_free_user_has_welcome_and_plan_credits(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    assert balances.balance(engine, "u1", now=T0).available == 105
    assert grants_of(engine, "u1") == [("bonus", 5, 5), ("plan", 100, 100)]
    entries = history.history(engine, "u1")
    assert [(e["type"], e["amount"], e["balance_after"]) for e in entries] == [
        ("bonus", 5, 5),
        ("grant", 100, 105),
    ]
    assert verify(engine)["ok"]


def test_usage_draws_from_the_soonest_expiring_grant_first(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    corrections.grant(
        engine,
        "u1",
        20,
        actor="op",
        reason="promo",
        source="promotion",
        expires_at=T0 + timedelta(days=3),
        now=T0,
    )
    spending.deduct(engine, "u1", 25, actor="op", policy=policy, now=T0)
    # promotion (3 days) first, then the plan grant (1 month); the welcome bonus never expires.
    assert grants_of(engine, "u1") == [("bonus", 5, 5), ("plan", 100, 95), ("promotion", 20, 0)]
    assert verify(engine)["ok"]


def test_deduct_is_refused_with_the_numbers_and_changes_nothing(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    before = snapshot(engine)
    with pytest.raises(InsufficientCredits) as refused:
        spending.deduct(engine, "u1", 106, actor="op", policy=policy, now=T0)
    assert refused.value.message == (
        "insufficient credits: u1 has 105 available, 106 needed; run `creditctl stripe "
        "checkout u1 --plan pro` for a bigger plan, or ask an operator for a grant"
    )
    assert snapshot(engine) == before
    posting = spending.deduct(engine, "u1", 105, actor="op", policy=policy, now=T0)
    assert posting.balance_after == 0 and posting.amount == -105


def test_email_finds_the_user_case_insensitively(engine, policy):
    new_user(engine, policy, "u1", email="Alice@Example.COM", now=T0)
    posting = spending.deduct(engine, "ALICE@example.com", 5, actor="op", policy=policy, now=T0)
    assert posting.user_id == "u1"
    assert balances.balance(engine, "alice@example.com", now=T0).available == 100
    with pytest.raises(UnknownUser):
        balances.balance(engine, "bob@example.com", now=T0)


def test_expired_grant_is_gone_from_the_balance_before_any_sweep(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    corrections.grant(
        engine, "u1", 10, actor="op", reason="promo", now=T0, expires_at=T0 + timedelta(hours=1)
    )
    assert balances.balance(engine, "u1", now=T0).available == 115
    later = T0 + timedelta(hours=2)
    assert balances.balance(engine, "u1", now=later).available == 105
    month_later = T0 + timedelta(days=32)
    with pytest.raises(InsufficientCredits) as refused:
        spending.deduct(engine, "u1", 6, actor="op", policy=policy, now=month_later)
    assert refused.value.details == {"available": 5, "needed": 6}
    assert balances.balance(engine, "u1", now=month_later).available == 5
    expiries = [e["amount"] for e in history.history(engine, "u1") if e["type"] == "expiry"]
    assert expiries == [-10, -100]
    assert verify(engine)["ok"]


def test_settle_due_sweeps_every_user_once(engine, policy):
    for uid in ("u1", "u2"):
        new_user(engine, policy, uid, now=T0)
    first = sweep.sweep_due(engine, now=T0 + timedelta(days=40))
    assert first == {"users": 2, "entries": 2}
    assert sweep.sweep_due(engine, now=T0 + timedelta(days=41)) == {"users": 0, "entries": 0}
    assert balances.balance(engine, "u1", now=T0 + timedelta(days=41)).available == 5
    assert verify(engine)["ok"]


def test_adjust_adds_and_removes_and_is_audited(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    up = corrections.adjust(
        engine, "u1", 7, actor="alice", reason="goodwill", policy=policy, now=T0
    )
    down = corrections.adjust(
        engine, "u1", -12, actor="alice", reason="double render", policy=policy, now=T0
    )
    assert (up.type, up.amount, up.balance_after) == ("adjustment", 7, 112)
    assert (down.type, down.amount, down.balance_after) == ("adjustment", -12, 100)
    with pytest.raises(InsufficientCredits):
        corrections.adjust(
            engine, "u1", -101, actor="alice", reason="too much", policy=policy, now=T0
        )
    with pytest.raises(InvalidInput, match="a reason is required"):
        corrections.adjust(engine, "u1", 1, actor="alice", reason="  ", policy=policy, now=T0)
    from creditctl.ledger.audit import audit_records

    adjusts = [r for r in audit_records(engine, user="u1") if r["action"] == "adjust"]
    assert [(r["operator"], r["reason"], r["details"]["delta"]) for r in adjusts] == [
        ("alice", "goodwill", 7),
        ("alice", "double render", -12),
    ]


def test_reversing_usage_refunds_and_reversing_twice_conflicts(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    usage = spending.deduct(engine, "u1", 30, actor="op", policy=policy, ref="r1", now=T0)
    refund = corrections.reverse(
        engine, usage.entry_id, actor="op", reason="our fault", policy=policy, now=T0
    )
    assert (refund.type, refund.amount, refund.balance_after) == ("refund", 30, 105)
    assert grants_of(engine, "u1")[-1] == ("refund", 30, 30)
    with pytest.raises(AlreadyReversed):
        corrections.reverse(
            engine, usage.entry_id, actor="op", reason="again", policy=policy, now=T0
        )
    with pytest.raises(Conflict, match="itself a reversal"):
        corrections.reverse(
            engine, refund.entry_id, actor="op", reason="undo", policy=policy, now=T0
        )
    assert history.history(engine, "u1")[-1]["reverses_entry_id"] == usage.entry_id
    assert verify(engine)["ok"]


def test_reversing_a_grant_takes_back_from_that_grant_first(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    bonus = corrections.grant(engine, "u1", 50, actor="op", reason="promo", now=T0)
    taken = corrections.reverse(
        engine, bonus.entry_id, actor="op", reason="sent by mistake", policy=policy, now=T0
    )
    assert (taken.amount, taken.balance_after) == (-50, 105)
    assert grants_of(engine, "u1") == [("bonus", 5, 5), ("plan", 100, 100), ("bonus", 50, 0)]


def test_reversal_of_spent_grant_is_refused_when_credits_are_gone(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    bonus = corrections.grant(engine, "u1", 50, actor="op", reason="promo", now=T0)
    spending.deduct(engine, "u1", 120, actor="op", policy=policy, now=T0)
    before = snapshot(engine)
    with pytest.raises(InsufficientCredits):
        corrections.reverse(
            engine, bonus.entry_id, actor="op", reason="oops", policy=policy, now=T0
        )
    assert snapshot(engine) == before


def test_entries_that_cannot_be_reversed(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    new_user(engine, policy, "u9", plan="ultimate", now=T0)
    hold = reserve(engine, "u1", 5, ttl=timedelta(minutes=5), actor="op", policy=policy, now=T0)
    with pytest.raises(Conflict, match="hold entry"):
        corrections.reverse(engine, hold.entry_id, actor="op", reason="x", policy=policy, now=T0)
    free_usage = spending.deduct(engine, "u9", 5, actor="op", policy=policy, now=T0)
    with pytest.raises(Conflict, match="moved no credits"):
        corrections.reverse(
            engine, free_usage.entry_id, actor="op", reason="x", policy=policy, now=T0
        )
    with pytest.raises(NotFound, match="ledger entry 99999 does not exist"):
        corrections.reverse(engine, 99999, actor="op", reason="x", policy=policy, now=T0)


def test_unlimited_plan_never_refuses_and_records_usage(engine, policy):
    new_user(engine, policy, "u9", plan="ultimate", now=T0)
    for _ in range(3):
        posting = spending.deduct(
            engine, "u9", 900_000, actor="op", policy=policy, ref="big", now=T0
        )
        assert posting.amount == 0 and posting.unlimited
    usage = [e for e in history.history(engine, "u9") if e["type"] == "usage"]
    assert [(e["quantity"], e["reference"]) for e in usage] == [(900_000, "big")] * 3
    assert verify(engine)["ok"]


def test_low_balance_warning_below_the_threshold(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    spending.deduct(engine, "u1", 95, actor="op", policy=policy, now=T0)
    assert balances.balance(engine, "u1", now=T0).warnings(policy) == []
    spending.deduct(engine, "u1", 1, actor="op", policy=policy, now=T0)
    assert balances.balance(engine, "u1", now=T0).warnings(policy) == [
        "low balance: 9 credits left (warning threshold 10)"
    ]


@pytest.mark.parametrize("operation", ["deduct", "grant", "adjust"])
def test_keyed_write_retried_returns_the_first_result(engine, policy, operation):
    new_user(engine, policy, "u1", now=T0)
    calls = {
        "deduct": lambda n: spending.deduct(
            engine, "u1", n, actor="op", policy=policy, key="k1", ref="r", now=T0
        ),
        "grant": lambda n: corrections.grant(
            engine, "u1", n, actor="op", reason="promo", key="k1", now=T0
        ),
        "adjust": lambda n: corrections.adjust(
            engine, "u1", -n, actor="op", reason="fix", policy=policy, key="k1", now=T0
        ),
    }
    first = calls[operation](3)
    after_first = snapshot(engine)
    again = calls[operation](3)
    assert (again.entry_id, again.grant_id, again.replayed) == (
        first.entry_id,
        first.grant_id,
        True,
    )
    assert snapshot(engine) == after_first
    with pytest.raises(IdempotencyConflict, match="already used for a different request"):
        calls[operation](4)
    assert snapshot(engine) == after_first
    # Keys are scoped per user: another user may use the same key.
    new_user(engine, policy, "u2", now=T0)
    other = spending.deduct(engine, "u2", 3, actor="op", policy=policy, key="k1", ref="r", now=T0)
    assert not other.replayed


def test_verify_reports_a_balance_that_disagrees_with_the_ledger(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    spending.deduct(engine, "u1", 5, actor="op", policy=policy, now=T0)
    assert verify(engine)["ok"]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET balance = balance + 1 WHERE id = 'u1'"))
    result = verify(engine)
    assert not result["ok"]
    assert {p["check"] for p in result["problems"]} == {"ledger sum", "grants remaining"}
    assert all(p["cached"] == 101 and p["recomputed"] == 100 for p in result["problems"])


def test_verify_reports_a_broken_balance_after_chain(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    posting = spending.deduct(engine, "u1", 5, actor="op", policy=policy, now=T0)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE ledger_entries SET balance_after = 7 WHERE id = :i"),
            {"i": posting.entry_id},
        )
    problems = verify(engine)["problems"]
    assert problems == [
        {
            "user_id": "u1",
            "check": f"balance_after of entry {posting.entry_id}",
            "cached": 7,
            "recomputed": 100,
        }
    ]


def test_empty_user_helper_starts_from_exactly_the_credits_asked(engine, policy):
    empty_user(engine, policy, "u1", 17, now=T0)
    assert balances.balance(engine, "u1", now=T0).available == 17
    assert verify(engine)["ok"]
