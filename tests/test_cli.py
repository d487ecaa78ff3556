"""The operator and render-script CLI through Typer's runner, on both databases."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa
from helpers import one_error_line, snapshot

INSUFFICIENT = (
    "error: insufficient credits: {user} has {available} available, {needed} "
    "needed; run `creditctl stripe checkout {user} --plan pro` for a bigger plan, "
    "or ask an operator for a grant"
)


def ok(result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return result.stdout


@pytest.fixture
def alice(cli):
    ok(cli("users", "add", "Alice@Example.com", "--id", "u1", "--name", "Alice"))
    return "alice@example.com"


def test_scripted_operator_session(cli):
    added = json.loads(ok(cli("users", "add", "Alice@Example.com", "--json")))
    user_id = added["id"]
    assert (added["email"], added["plan"], added["balance"]) == ("Alice@Example.com", "free", 105)

    shown = json.loads(ok(cli("credits", "balance", "alice@example.com", "--json")))
    assert {k: shown[k] for k in ("user_id", "available", "held", "plan")} == {
        "user_id": user_id,
        "available": 105,
        "held": 0,
        "plan": "free",
    }

    first = json.loads(
        ok(
            cli(
                "credits",
                "deduct",
                "alice@example.com",
                "100",
                "--key",
                "job-1",
                "--ref",
                "render-1",
                "--json",
            )
        )
    )
    assert {k: first[k] for k in ("user_id", "available", "held", "plan", "replayed")} == {
        "user_id": user_id,
        "available": 5,
        "held": 0,
        "plan": "free",
        "replayed": False,
    }
    assert isinstance(first["entry_id"], int)
    assert first["warnings"] == ["low balance: 5 credits left (warning threshold 10)"]

    past_zero = cli("credits", "deduct", "alice@example.com", "6")
    assert past_zero.exit_code == 3
    assert one_error_line(past_zero.stderr) == INSUFFICIENT.format(
        user="alice@example.com", available=5, needed=6
    )
    assert past_zero.stdout == ""

    retry = json.loads(
        ok(
            cli(
                "credits",
                "deduct",
                "alice@example.com",
                "100",
                "--key",
                "job-1",
                "--ref",
                "render-1",
                "--json",
            )
        )
    )
    assert (retry["entry_id"], retry["replayed"], retry["available"]) == (
        first["entry_id"],
        True,
        5,
    )

    no_reason = cli("credits", "adjust", "alice@example.com", "5")
    assert no_reason.exit_code == 2
    assert one_error_line(no_reason.stderr) == (
        'error: a reason is required: pass --reason "why this change is made"'
    )

    reversed_ = json.loads(
        ok(
            cli(
                "credits",
                "reverse",
                str(first["entry_id"]),
                "--reason",
                "render failed on our side",
                "--json",
            )
        )
    )
    assert (reversed_["type"], reversed_["amount"], reversed_["balance_after"]) == (
        "refund",
        100,
        105,
    )

    verified = cli("audit", "verify", "--json")
    assert verified.exit_code == 0
    assert json.loads(verified.stdout)["ok"] is True


def test_unknown_user_message(cli):
    for args in (
        ("credits", "balance", "nobody"),
        ("credits", "deduct", "nobody", "1"),
        ("credits", "check", "nobody", "1"),
        ("account", "nobody"),
    ):
        result = cli(*args)
        assert result.exit_code == 4, args
        assert one_error_line(result.stderr) == (
            "error: unknown user 'nobody': no user has that id or email; "
            "see `creditctl users search`"
        )


@pytest.mark.parametrize(
    "args",
    [
        ("credits", "grant", "u1", "5"),
        ("credits", "grant", "u1", "5", "--reason", "   "),
        ("credits", "adjust", "u1", "-5"),
        ("credits", "reverse", "1"),
    ],
)
def test_missing_reason_message(cli, alice, engine, args):
    before = snapshot(engine)
    result = cli(*args)
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        'error: a reason is required: pass --reason "why this change is made"'
    )
    assert snapshot(engine) == before


def test_check_answers_without_writing(cli, alice, engine):
    before = snapshot(engine)
    yes = cli("credits", "check", "u1", "105", "--json")
    assert yes.exit_code == 0
    assert json.loads(yes.stdout)["ok"] is True
    no = cli("credits", "check", "u1", "106", "--json")
    assert no.exit_code == 3
    assert json.loads(no.stdout)["ok"] is False
    assert one_error_line(no.stderr) == INSUFFICIENT.format(user="u1", available=105, needed=106)
    assert snapshot(engine) == before


def test_text_output_goes_to_stdout_and_messages_to_stderr(cli, alice):
    result = cli("credits", "deduct", "u1", "99", "--ref", "r1")
    assert result.exit_code == 0
    assert result.stdout.startswith("deducted 99 from u1: entry ")
    assert result.stdout.strip().endswith("available 6")
    assert result.stderr == "warning: low balance: 6 credits left (warning threshold 10)\n"


def test_grant_adjust_and_history(cli, alice):
    granted = json.loads(
        ok(
            cli(
                "credits",
                "grant",
                "u1",
                "50",
                "--reason",
                "make-good",
                "--expires",
                "2099-01-31",
                "--json",
            )
        )
    )
    assert (granted["type"], granted["amount"], granted["balance_after"]) == ("bonus", 50, 155)
    adjusted = json.loads(
        ok(cli("credits", "adjust", "u1", "-20", "--reason", "duplicate", "--json"))
    )
    assert (adjusted["type"], adjusted["amount"], adjusted["balance_after"]) == (
        "adjustment",
        -20,
        135,
    )
    history = json.loads(ok(cli("credits", "history", "u1", "--json")))
    assert [(e["type"], e["amount"], e["balance_after"], e["actor"]) for e in history] == [
        ("bonus", 5, 5, "tester"),
        ("grant", 100, 105, "tester"),
        ("bonus", 50, 155, "tester"),
        ("adjustment", -20, 135, "tester"),
    ]
    rows = list(csv.DictReader(io.StringIO(ok(cli("credits", "history", "u1", "--format", "csv")))))
    assert [r["amount"] for r in rows] == ["5", "100", "50", "-20"]
    log = json.loads(ok(cli("audit", "log", "--user", "u1", "--json")))
    assert [(r["action"], r["operator"], r["reason"]) for r in log] == [
        ("user.add", "tester", "new user"),
        ("grant", "tester", "make-good"),
        ("adjust", "tester", "duplicate"),
    ]
    by_flag = json.loads(
        ok(cli("--operator", "bob", "credits", "adjust", "u1", "1", "--reason", "flag", "--json"))
    )
    assert json.loads(ok(cli("audit", "log", "--json")))[-1]["operator"] == "bob"
    assert by_flag["balance_after"] == 136


@pytest.mark.parametrize(
    "command",
    [
        ("credits", "deduct", "u1", "3", "--ref", "r"),
        ("credits", "grant", "u1", "3", "--reason", "promo"),
        ("credits", "adjust", "u1", "-3", "--reason", "fix"),
    ],
)
def test_keyed_commands_retried(cli, alice, engine, command):
    first = json.loads(ok(cli(*command, "--key", "k-1", "--json")))
    after_first = snapshot(engine)
    again = json.loads(ok(cli(*command, "--key", "k-1", "--json")))
    assert (again["entry_id"], again["replayed"]) == (first["entry_id"], True)
    assert snapshot(engine) == after_first
    changed = list(command)
    changed[3] = "-4" if changed[3].startswith("-") else "4"
    conflict = cli(*changed, "--key", "k-1")
    assert conflict.exit_code == 5
    assert one_error_line(conflict.stderr) == (
        f"error: idempotency key 'k-1' was already used for a different request (entry "
        f"{first['entry_id']}); use a new key for a new request"
    )
    assert snapshot(engine) == after_first


def test_bad_idempotency_key_is_refused(cli, alice, engine):
    before = snapshot(engine)
    result = cli("credits", "deduct", "u1", "1", "--key", "has space")
    assert result.exit_code == 2
    one_error_line(result.stderr)
    assert snapshot(engine) == before


def test_reverse_refusals(cli, alice):
    entry = json.loads(ok(cli("credits", "deduct", "u1", "1", "--json")))["entry_id"]
    ok(cli("credits", "reverse", str(entry), "--reason", "x"))
    twice = cli("credits", "reverse", str(entry), "--reason", "x")
    assert twice.exit_code == 5
    assert one_error_line(twice.stderr).startswith(f"error: entry {entry} was already reversed")
    missing = cli("credits", "reverse", "99999", "--reason", "x")
    assert missing.exit_code == 4
    assert one_error_line(missing.stderr) == (
        "error: ledger entry 99999 does not exist; see `creditctl credits history USER`"
    )


def test_reverse_accepts_ids_beyond_the_credit_limit(cli, alice):
    entry = json.loads(ok(cli("credits", "deduct", "u1", "2", "--json")))["entry_id"]
    assert entry > 1
    small = {"CREDITCTL_MAX_AMOUNT": str(entry - 1)}
    reversed_ = cli("credits", "reverse", str(entry), "--reason", "x", "--json", env=small)
    assert reversed_.exit_code == 0, reversed_.stderr
    missing = cli("credits", "reverse", "2147483647", "--reason", "x", env=small)
    assert missing.exit_code == 4
    too_big = cli("credits", "reverse", "2147483648", "--reason", "x", env=small)
    assert too_big.exit_code == 2
    assert one_error_line(too_big.stderr) == (
        "error: entry id must be a whole number from 1 to 2147483647, got '2147483648'"
    )


def test_features_check(cli, alice):
    assert cli("features", "check", "u1", "analytics").exit_code == 0
    refused = cli("features", "check", "u1", "scheduling")
    assert refused.exit_code == 3
    assert one_error_line(refused.stderr).startswith(
        "error: feature 'scheduling' is not in plan 'free';"
    )
    ok(cli("users", "add", "vip@example.com", "--id", "u9", "--plan", "ultimate"))
    assert json.loads(ok(cli("features", "check", "u9", "ads", "--json")))["allowed"] is True


def test_unlimited_user_never_refused_and_usage_recorded(cli):
    ok(cli("users", "add", "vip@example.com", "--id", "u9", "--plan", "ultimate"))
    deducted = json.loads(ok(cli("credits", "deduct", "u9", "1000000", "--json")))
    assert (deducted["unlimited"], deducted["amount"]) == (True, 0)
    assert cli("credits", "check", "u9", "1000000").exit_code == 0
    history = json.loads(ok(cli("credits", "history", "u9", "--json")))
    assert history[-1]["quantity"] == 1000000


def test_users_search_show_list(cli, alice):
    ok(cli("users", "add", "bob@other.org", "--id", "u2"))
    found = json.loads(ok(cli("users", "search", "EXAMPLE", "--json")))
    assert [u["id"] for u in found] == ["u1"]
    assert json.loads(ok(cli("users", "search", "u2", "--json")))[0]["email"] == "bob@other.org"
    assert json.loads(ok(cli("users", "show", "ALICE@example.com", "--json")))["id"] == "u1"
    assert [u["id"] for u in json.loads(ok(cli("users", "list", "--json")))] == ["u1", "u2"]


def test_account_view(cli, alice):
    ok(cli("credits", "deduct", "u1", "98", "--ref", "render-7"))
    view = json.loads(ok(cli("account", "u1", "--json")))
    assert view["balance"]["available"] == 7
    assert view["plan"]["name"] == "free"
    assert [u["reference"] for u in view["recent_usage"]] == ["render-7"]
    assert view["warnings"] == ["low balance: 7 credits left (warning threshold 10)"]
    text = cli("account", "u1")
    assert text.exit_code == 0 and "available" in text.stdout and "render-7" in text.stdout


def test_audit_verify_exits_1_on_a_difference(cli, alice, engine):
    assert cli("audit", "verify").exit_code == 0
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET balance = 7 WHERE id = 'u1'"))
    result = cli("audit", "verify", "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert {(p["user_id"], p["check"], p["cached"], p["recomputed"]) for p in problems} == {
        ("u1", "ledger sum", 7, 105),
        ("u1", "grants remaining", 7, 105),
    }


def test_db_current_reports_head(cli):
    current = json.loads(ok(cli("db", "current", "--json")))
    assert current["up_to_date"] is True and current["revision"] == current["head"]
