"""Reversing a grant whose credits are on hold, and `audit verify` catching a grant refilled
after its reversal, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import T0, empty_user, snapshot

from creditctl.errors import Conflict
from creditctl.ledger import balances, corrections, holds, sweep
from creditctl.ledger.audit import verify

BONUS_ENDS = T0 + timedelta(days=10)
AFTER = BONUS_ENDS + timedelta(seconds=1)


@pytest.fixture
def held_bonus(engine, policy):
    """u1: 100 lasting credits and a 10-credit bonus ending in ten days, the bonus on hold."""
    empty_user(engine, policy, "u1", 100, now=T0)
    bonus = corrections.grant(
        engine, "u1", 10, actor="op", reason="promo", expires_at=BONUS_ENDS, now=T0
    )
    hold = holds.reserve(
        engine, "u1", 10, ttl=timedelta(hours=1), actor="op", policy=policy, now=T0
    )
    return bonus, hold


def available(engine, now) -> int:
    return balances.balance(engine, "u1", now=now).available


def reversal_as_it_was(engine, bonus) -> None:
    """What `reverse` did before the fix: 10 credits taken from the lasting grant instead."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE grants SET remaining = remaining - 10 "
                "WHERE user_id = 'u1' AND expires_at IS NULL AND remaining >= 10"
            )
        )
        after = conn.execute(
            sa.text("UPDATE users SET balance = balance - 10 WHERE id = 'u1' RETURNING balance")
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO ledger_entries (user_id, type, amount, balance_after, quantity, "
                "description, actor, reverses_entry_id, created_at) VALUES ('u1', 'adjustment', "
                "-10, :after, 0, 'reversal', 'op', :entry, :now)"
            ),
            {"after": after, "entry": bonus.entry_id, "now": T0},
        )


def reversal_problems(engine) -> list[tuple]:
    return [
        (p["check"], p["cached"], p["recomputed"])
        for p in verify(engine)["problems"]
        if "reversed" in p["check"]
    ]


def test_verify_reports_a_reversed_grant_that_still_has_credits(engine, held_bonus):
    bonus, hold = held_bonus
    reversal_as_it_was(engine, bonus)
    reversal_id = max(e.id for e in _entries(engine))
    check = f"grant {bonus.grant_id} reversed by entry {reversal_id}"
    assert verify(engine)["problems"] == [
        {"user_id": "u1", "check": check, "cached": 10, "recomputed": 0}
    ]
    holds.release(engine, hold.hold_id, actor="op", now=T0)  # refills the reversed grant
    assert reversal_problems(engine) == [(check, 10, 0)]
    assert available(engine, AFTER) == 90  # the refilled grant expired: 10 credits lost
    assert reversal_problems(engine) == [(check, 10, 0)]


def test_reversing_a_grant_on_hold_is_refused_and_changes_nothing(engine, policy, held_bonus):
    bonus, hold = held_bonus
    before = snapshot(engine)
    with pytest.raises(Conflict) as refused:
        corrections.reverse(
            engine, bonus.entry_id, actor="op", reason="sent twice", policy=policy, now=T0
        )
    assert refused.value.message == (
        f"entry {bonus.entry_id} cannot be reversed yet: 10 of its grant's credits are on "
        f"open hold {hold.hold_id}; capture or release it (`creditctl credits release HOLD_ID`) "
        "or wait until it expires (by 2026-01-10T13:00:00Z), then reverse"
    )
    assert refused.value.exit_code == 5
    assert snapshot(engine) == before


def test_grant_reversed_once_its_hold_is_released_stays_reversed(engine, policy, held_bonus):
    bonus, hold = held_bonus
    holds.release(engine, hold.hold_id, actor="op", now=T0)
    corrections.reverse(
        engine, bonus.entry_id, actor="op", reason="sent twice", policy=policy, now=T0
    )
    assert available(engine, T0) == 100
    assert available(engine, AFTER) == 100
    assert verify(engine)["ok"], verify(engine)["problems"]


def test_grant_reversed_after_its_hold_was_captured_takes_the_spent_part_elsewhere(
    engine, policy, held_bonus
):
    bonus, hold = held_bonus
    holds.capture(engine, hold.hold_id, actor="op", now=T0)
    corrections.reverse(
        engine, bonus.entry_id, actor="op", reason="sent twice", policy=policy, now=T0
    )
    assert available(engine, T0) == 90
    sweep.sweep_due(engine, now=AFTER)
    assert available(engine, AFTER) == 90
    assert verify(engine)["ok"], verify(engine)["problems"]


def test_grant_whose_hold_expired_is_reversed_after_the_sweep(engine, policy, held_bonus):
    bonus, _hold = held_bonus
    later = T0 + timedelta(hours=2)  # the hold's hour is over, the bonus still runs
    corrections.reverse(
        engine, bonus.entry_id, actor="op", reason="sent twice", policy=policy, now=later
    )
    assert (available(engine, later), available(engine, AFTER)) == (100, 100)
    assert verify(engine)["ok"], verify(engine)["problems"]


def test_verify_reports_a_grant_holding_more_than_it_gave(engine, held_bonus):
    bonus, _hold = held_bonus
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE grants SET remaining = 5 WHERE id = :g"), {"g": bonus.grant_id}
        )
        conn.execute(sa.text("UPDATE users SET balance = balance + 5 WHERE id = 'u1'"))
    problems = [p for p in verify(engine)["problems"] if p["check"].startswith("grant ")]
    assert problems == [
        {
            "user_id": "u1",
            "check": f"grant {bonus.grant_id} remaining + on hold",
            "cached": 15,
            "recomputed": 10,
        }
    ]


def _entries(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT id FROM ledger_entries")).all()


def test_reversed_bonus_leaves_the_lasting_credits_whole(engine, policy, held_bonus):
    """The issue's numbers: 100 lasting credits stay 100 after the reversed bonus's date."""
    bonus, hold = held_bonus
    try:
        corrections.reverse(
            engine, bonus.entry_id, actor="op", reason="sent twice", policy=policy, now=T0
        )
        holds.release(engine, hold.hold_id, actor="op", now=T0)
    except Conflict:
        holds.release(engine, hold.hold_id, actor="op", now=T0)
        corrections.reverse(
            engine, bonus.entry_id, actor="op", reason="sent twice", policy=policy, now=T0
        )
    assert (available(engine, T0), available(engine, AFTER)) == (100, 100)
    assert verify(engine)["ok"], verify(engine)["problems"]
