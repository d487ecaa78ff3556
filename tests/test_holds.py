"""Holds on both databases: reserve, capture (all or part), release, expiry, retries."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from freezegun import freeze_time
from helpers import T0, new_user, one_error_line, snapshot

from creditctl.errors import HoldSettled, InsufficientCredits, InvalidInput, NotFound
from creditctl.ledger import balances, corrections, holds
from creditctl.ledger.audit import verify


def reserve(cli, *args: str) -> dict:
    result = cli("credits", "reserve", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def balance(cli, user: str = "u1") -> dict:
    result = cli("credits", "balance", user, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def hold_entries(cli, hold_id: int, user: str = "u1") -> list[tuple]:
    rows = json.loads(cli("credits", "history", user, "--json").stdout)
    return [
        (e["type"], e["amount"], e["quantity"], e["reference"])
        for e in rows
        if e["hold_id"] == hold_id
    ]


@pytest.fixture
def user(cli):
    assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
    return "u1"


def test_reserve_holds_credits_away_from_everyone_else(cli, user):
    hold = reserve(cli, "u1", "100", "--ttl", "30m", "--ref", "render-1")
    assert set(hold) >= {"hold_id", "expires_at", "available"}
    assert (hold["available"], hold["held"], hold["status"]) == (5, 100, "open")
    assert (balance(cli)["available"], balance(cli)["held"]) == (5, 100)
    refused = cli("credits", "deduct", "u1", "6")
    assert refused.exit_code == 3
    assert one_error_line(refused.stderr).startswith(
        "error: insufficient credits: u1 has 5 available, 6 needed;"
    )
    assert cli("credits", "reserve", "u1", "6").exit_code == 3
    listed = json.loads(cli("holds", "list", "--user", "alice@example.com", "--json").stdout)
    assert [(h["hold_id"], h["amount"], h["reference"], h["state"]) for h in listed] == [
        (hold["hold_id"], 100, "render-1", "open")
    ]
    account = json.loads(cli("account", "u1", "--json").stdout)
    assert [h["hold_id"] for h in account["holds"]] == [hold["hold_id"]]
    assert account["balance"]["held"] == 100


def test_text_reserve_prints_only_the_hold_id_on_stdout(cli, user):
    result = cli("credits", "reserve", "u1", "3")
    assert result.exit_code == 0
    hold_id = int(result.stdout.strip())
    assert f"hold {hold_id} (open): 3 credits for u1" in result.stderr


def test_full_capture_spends_the_hold(cli, user):
    hold = reserve(cli, "u1", "10", "--ref", "r1")
    result = cli("credits", "capture", str(hold["hold_id"]), "--json")
    assert result.exit_code == 0, result.stderr
    captured = json.loads(result.stdout)
    assert (captured["status"], captured["captured"], captured["available"], captured["held"]) == (
        "captured",
        10,
        95,
        0,
    )
    assert hold_entries(cli, hold["hold_id"]) == [("hold", -10, 10, "r1"), ("capture", 0, 10, "r1")]
    assert balance(cli)["available"] == 95
    assert cli("holds", "list", "--json").stdout.strip() == "[]"


def test_partial_capture_returns_the_rest_at_once(cli, user):
    hold = reserve(cli, "u1", "10", "--ref", "r2")
    result = cli("credits", "capture", str(hold["hold_id"]), "4", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["captured"] == 4
    assert (balance(cli)["available"], balance(cli)["held"]) == (101, 0)
    assert hold_entries(cli, hold["hold_id"]) == [
        ("hold", -10, 10, "r2"),
        ("capture", 0, 4, "r2"),
        ("release", 6, 0, "r2"),
    ]
    assert cli("audit", "verify").exit_code == 0


def test_release_returns_everything(cli, user):
    hold = reserve(cli, "u1", "10")
    result = cli("credits", "release", str(hold["hold_id"]), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "released"
    assert (balance(cli)["available"], balance(cli)["held"]) == (105, 0)


@pytest.mark.parametrize("second", [("capture",), ("release",), ("capture", "1")])
def test_settled_hold_cannot_be_settled_again(cli, user, engine, second):
    hold_id = str(reserve(cli, "u1", "10")["hold_id"])
    assert cli("credits", "capture", hold_id, "3").exit_code == 0
    before = snapshot(engine)
    again = cli("credits", *second[:1], hold_id, *second[1:])
    assert again.exit_code == 5
    assert one_error_line(again.stderr) == (
        f"error: hold {hold_id} is already captured; nothing was changed"
    )
    assert snapshot(engine) == before


def test_capturing_more_than_was_held_is_a_usage_error(cli, user, engine):
    hold_id = str(reserve(cli, "u1", "10")["hold_id"])
    before = snapshot(engine)
    result = cli("credits", "capture", hold_id, "11")
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        f"error: cannot capture 11 credits: hold {hold_id} holds only 10"
    )
    assert snapshot(engine) == before
    assert cli("credits", "capture", hold_id, "10").exit_code == 0


def test_unknown_hold_is_not_found(cli, user):
    for verb in ("capture", "release"):
        result = cli("credits", verb, "424242")
        assert result.exit_code == 4
        assert one_error_line(result.stderr) == (
            "error: hold 424242 does not exist; see `creditctl holds list`"
        )


def test_bad_ttl_is_refused_and_nothing_is_held(cli, user, engine):
    before = snapshot(engine)
    for ttl in ("abc", "0", "0m", "-5m", "1.5h", "8d", "30 minutes", "m", ""):
        result = cli("credits", "reserve", "u1", "5", "--ttl", ttl)
        assert result.exit_code == 2, (ttl, result.output)
        assert one_error_line(result.stderr).startswith(f"error: duration {ttl!r}")
    assert snapshot(engine) == before


def test_ttl_forms(cli, user):
    for ttl, seconds in (("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("45", 45)):
        with freeze_time(T0):
            hold = reserve(cli, "u1", "1", "--ttl", ttl)
        expected = (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert hold["expires_at"] == expected, ttl


def test_expired_hold_counts_as_released_before_the_sweep(cli, database_url):
    with freeze_time(T0) as clock:
        assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
        hold_id = reserve(cli, "u1", "100", "--ttl", "30m", "--ref", "r9")["hold_id"]
        clock.tick(timedelta(minutes=29))
        assert (balance(cli)["available"], balance(cli)["held"]) == (5, 100)
        clock.tick(timedelta(minutes=2))
        late = cli("credits", "capture", str(hold_id))
        assert late.exit_code == 5
        assert one_error_line(late.stderr) == (
            f"error: hold {hold_id} expired at 2026-01-10T12:30:00Z; its credits went back to "
            "the balance, so nothing was captured or released"
        )
        # No sweep has run: every read must still see the credits back.
        listed = json.loads(cli("holds", "list", "--json").stdout)
        assert [h["state"] for h in listed] == ["expired (not yet swept)"]
        assert (balance(cli)["available"], balance(cli)["held"]) == (105, 0)
        check = cli("credits", "check", "u1", "105", "--json")
        assert check.exit_code == 0 and json.loads(check.stdout)["available"] == 105
        released = cli("credits", "release", str(hold_id))
        assert released.exit_code == 5
        assert one_error_line(released.stderr) == (
            f"error: hold {hold_id} is already expired; nothing was changed"
        )
        swept = cli("holds", "expire", "--json")
        assert swept.exit_code == 0
        assert cli("holds", "list", "--json").stdout.strip() == "[]"
        assert hold_entries(cli, hold_id) == [("hold", -100, 100, "r9"), ("release", 100, 0, "r9")]
        assert cli("audit", "verify").exit_code == 0


def test_deduct_right_after_a_hold_expires_counts_its_credits(cli):
    with freeze_time(T0) as clock:
        assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
        reserve(cli, "u1", "105", "--ttl", "1m")
        assert cli("credits", "deduct", "u1", "1").exit_code == 3
        clock.tick(timedelta(minutes=1))
        deducted = cli("credits", "deduct", "u1", "105", "--json")
        assert deducted.exit_code == 0, deducted.stderr
        assert json.loads(deducted.stdout)["available"] == 0


def test_holds_expire_sweeps_holds_of_unlimited_users(cli):
    with freeze_time(T0) as clock:
        assert (
            cli("users", "add", "vip@example.com", "--id", "u9", "--plan", "ultimate").exit_code
            == 0
        )
        hold = reserve(cli, "u9", "500", "--ttl", "1m")
        assert hold["status"] == "open"
        clock.tick(timedelta(minutes=2))
        assert json.loads(cli("holds", "expire", "--json").stdout)["users"] == 1
        assert cli("holds", "list", "--json").stdout.strip() == "[]"
        assert cli("credits", "capture", str(hold["hold_id"])).exit_code == 5


def test_expiry_sweep_in_the_domain_returns_credits_to_their_grants(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    hold = holds.reserve(
        engine, "u1", 50, ttl=timedelta(minutes=5), actor="op", policy=policy, now=T0
    )
    assert holds.expire(engine, now=T0 + timedelta(minutes=4)) == {"users": 0, "entries": 0}
    assert holds.expire(engine, now=T0 + timedelta(minutes=5)) == {"users": 1, "entries": 1}
    with pytest.raises(HoldSettled, match="already expired"):
        holds.capture(engine, hold.hold_id, actor="op", now=T0 + timedelta(minutes=6))
    assert balances.balance(engine, "u1", now=T0 + timedelta(minutes=6)).available == 105
    assert verify(engine)["ok"]


def test_hold_taken_from_a_grant_that_lapses_meanwhile(engine, policy):
    """Credits captured from an expiring grant are spent; the rest expire with the grant."""
    new_user(engine, policy, "u1", now=T0)
    corrections.adjust(engine, "u1", -105, actor="op", reason="empty", policy=policy, now=T0)
    corrections.grant(
        engine, "u1", 10, actor="op", reason="promo", now=T0, expires_at=T0 + timedelta(minutes=10)
    )
    hold = holds.reserve(
        engine, "u1", 10, ttl=timedelta(minutes=30), actor="op", policy=policy, now=T0
    )
    later = T0 + timedelta(minutes=20)
    assert balances.balance(engine, "u1", now=later).available == 0
    result = holds.capture(engine, hold.hold_id, 4, actor="op", now=later)
    assert (result.available, result.held) == (0, 0)
    assert verify(engine)["ok"]


def test_reserve_refused_changes_nothing(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    before = snapshot(engine)
    with pytest.raises(InsufficientCredits):
        holds.reserve(
            engine, "u1", 106, ttl=timedelta(minutes=5), actor="op", policy=policy, now=T0
        )
    assert snapshot(engine) == before
    with pytest.raises(NotFound):
        holds.reserve(
            engine, "nobody", 1, ttl=timedelta(minutes=5), actor="op", policy=policy, now=T0
        )
    assert snapshot(engine) == before


@pytest.mark.parametrize("verb", ["reserve", "capture", "release"])
def test_hold_commands_retried_with_a_key(cli, user, engine, verb):
    hold_id = None
    if verb != "reserve":
        hold_id = str(reserve(cli, "u1", "10")["hold_id"])
    args = {
        "reserve": ("credits", "reserve", "u1", "7", "--ref", "r"),
        "capture": ("credits", "capture", hold_id or "", "6"),
        "release": ("credits", "release", hold_id or ""),
    }[verb]
    first = cli(*args, "--key", "job-1", "--json")
    assert first.exit_code == 0, first.stderr
    after_first = snapshot(engine)
    again = cli(*args, "--key", "job-1", "--json")
    assert again.exit_code == 0, again.stderr
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    assert (two["hold_id"], two["entry_id"], two["replayed"]) == (
        one["hold_id"],
        one["entry_id"],
        True,
    )
    assert snapshot(engine) == after_first
    changed = {
        "reserve": ("credits", "reserve", "u1", "8", "--ref", "r"),
        "capture": ("credits", "capture", hold_id or "", "5"),
        "release": ("credits", "release", str(reserve(cli, "u1", "1")["hold_id"])),
    }[verb]
    before_conflict = snapshot(engine)
    conflict = cli(*changed, "--key", "job-1")
    assert conflict.exit_code == 5
    assert "error: idempotency key 'job-1' was already used for a different request" in (
        one_error_line(conflict.stderr)
    )
    assert snapshot(engine) == before_conflict


def test_capture_amount_zero_and_bad_hold_ids(cli, user, engine):
    hold_id = str(reserve(cli, "u1", "10")["hold_id"])
    before = snapshot(engine)
    for args in (
        ("capture", hold_id, "0"),
        ("capture", "abc"),
        ("release", "-1"),
        ("capture", hold_id, "2.5"),
    ):
        result = cli("credits", *args)
        assert result.exit_code == 2, (args, result.output)
        one_error_line(result.stderr)
    assert snapshot(engine) == before


def test_capture_more_than_held_in_the_domain(engine, policy):
    new_user(engine, policy, "u1", now=T0)
    hold = holds.reserve(
        engine, "u1", 5, ttl=timedelta(minutes=5), actor="op", policy=policy, now=T0
    )
    with pytest.raises(InvalidInput):
        holds.capture(engine, hold.hold_id, 6, actor="op", now=T0)
