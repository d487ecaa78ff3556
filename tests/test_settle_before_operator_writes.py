"""Operators' grants and corrections sweep expired credits first, so the balance they print is
what the user can spend."""

from datetime import UTC, datetime, timedelta

from creditctl.accounts.users import add_user
from creditctl.ledger.audit import verify
from creditctl.ledger.balances import balance
from creditctl.ledger.corrections import adjust, grant
from creditctl.ledger.history import history

START = datetime(2026, 11, 1, tzinfo=UTC)
LATER = START + timedelta(days=40)  # the free period's 100 credits have lapsed


def test_a_grant_after_expiry_prints_the_spendable_balance(engine, policy):
    add_user(
        engine, "s@example.com", user_id="s1", actor="t", policy=policy, plan="free", now=START
    )
    posting = grant(engine, "s1", 10, actor="op", reason="make-good", now=LATER)
    assert posting.balance_after == 15  # 5 welcome + 10, not 115
    assert balance(engine, "s1", now=LATER).available == 15
    types = [e["type"] for e in history(engine, "s1")]
    assert types[-2:] == ["expiry", "bonus"]
    assert verify(engine)["ok"]


def test_a_positive_adjustment_after_expiry_too(engine, policy):
    add_user(
        engine, "s@example.com", user_id="s1", actor="t", policy=policy, plan="free", now=START
    )
    posting = adjust(engine, "s1", 3, actor="op", reason="fix", policy=policy, now=LATER)
    assert posting.balance_after == 8
    assert verify(engine)["ok"]
