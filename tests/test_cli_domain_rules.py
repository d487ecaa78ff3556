"""The rules the CLI used to check itself now hold for every caller of the domain.

A grant's source, a reason, a display name, search text and a new user's default plan were
checked (or filled in) by the CLI commands only, so an in-process caller (the daemon's coming
HTTP API) could grant `plan` credits, store an ESC in a reason, or had to know the default
plan. Each rule is now checked once, by the domain, and the CLI shows its refusal as before.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from helpers import new_user, one_error_line, snapshot

from creditctl.accounts.plans import init_database, list_plans
from creditctl.accounts.users import add_user, search_users
from creditctl.config.settings import load_settings
from creditctl.db.models import GRANT_SOURCES
from creditctl.errors import InvalidInput
from creditctl.ledger.corrections import OPERATOR_SOURCES, adjust, grant, reverse
from creditctl.ledger.history import history


@pytest.fixture
def alice(engine, policy):
    return new_user(engine, policy, "u1")["id"]


@pytest.mark.parametrize("source", ["plan", "refund", "nonsense"])
def test_grant_refuses_a_source_operators_may_not_give(engine, policy, alice, source):
    before = snapshot(engine)
    with pytest.raises(InvalidInput) as refused:
        grant(engine, alice, 5, actor="t", reason="x", source=source)
    assert refused.value.message == (f"source {source!r} is not one of bonus, promotion, admin")
    assert snapshot(engine) == before


def test_operator_sources_are_grant_sources():
    assert set(OPERATOR_SOURCES) < set(GRANT_SOURCES)


def test_the_cli_shows_the_domain_refusal_of_a_source(cli, alice, engine):
    before = snapshot(engine)
    result = cli("credits", "grant", "u1", "5", "--reason", "x", "--source", "plan")
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        "error: source 'plan' is not one of bonus, promotion, admin"
    )
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (None, 'a reason is required: pass --reason "why this change is made"'),
        ("  ", 'a reason is required: pass --reason "why this change is made"'),
        ("x" * 501, "reason is longer than 500 characters; shorten it"),
        (
            "make-good\x1b[2J",
            "reason contains a control character (U+001B at position 10); remove it",
        ),
    ],
)
def test_every_correction_checks_its_reason(engine, policy, alice, reason, message):
    before = snapshot(engine)
    calls = [
        lambda: grant(engine, alice, 5, actor="t", reason=reason),
        lambda: adjust(engine, alice, -1, actor="t", reason=reason, policy=policy),
        lambda: reverse(engine, 1, actor="t", reason=reason, policy=policy),
    ]
    for call in calls:
        with pytest.raises(InvalidInput) as refused:
            call()
        assert refused.value.message == message
    assert snapshot(engine) == before


def test_a_reason_is_stored_as_typed(engine, alice):
    posting = grant(engine, alice, 5, actor="t", reason=" make-good ")
    [row] = [r for r in history(engine, alice) if r["id"] == posting.entry_id]
    assert row["description"] == " make-good "


def test_add_user_starts_on_the_policy_default_plan(engine, policy):
    added = add_user(engine, "d@example.com", user_id="d1", actor="t", policy=policy)
    assert added["plan"] == "free"
    pro = replace(policy, default_plan="pro")
    assert add_user(engine, "p@example.com", actor="t", policy=pro)["plan"] == "pro"


def test_the_cli_default_plan_comes_from_the_config(cli, tmp_path):
    config = tmp_path / "creditctl.toml"
    config.write_text('[credits]\ndefault_plan = "pro"\n')
    result = cli("users", "add", "c@example.com", "--json", env={"CREDITCTL_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plan"] == "pro"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bob\x1b]0;owned\x07", "name contains a control character (U+001B at position 4)"),
        ("n" * 201, "name is longer than 200 characters"),
    ],
)
def test_add_user_checks_the_name(engine, policy, name, message):
    before = snapshot(engine)
    with pytest.raises(InvalidInput) as refused:
        add_user(engine, "b@example.com", actor="t", policy=policy, name=name)
    assert refused.value.message.startswith(message)
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("  ", "search text is empty"),
        ("a" * 255, "search text is longer than 254 characters"),
        ("a\x1b", "search text contains a control character (U+001B at position 2)"),
    ],
)
def test_search_users_checks_its_text(engine, alice, query, message):
    with pytest.raises(InvalidInput) as refused:
        search_users(engine, query)
    assert refused.value.message.startswith(message)


def test_search_users_trims_the_text(engine, alice):
    assert [row["id"] for row in search_users(engine, "  u1  ")] == ["u1"]


def test_init_database_upgrades_and_loads_the_plans(engine):
    settings = load_settings(environ={})
    done = init_database(engine, settings.plans)
    assert done.revision == done.revision_before  # the fixture's database is at head already
    assert done.as_dict() == {
        "revision_before": done.revision,
        "revision": done.revision,
        "plans": {name: "unchanged" for name in settings.plans},
    }
    assert {plan["name"] for plan in list_plans(engine)} == set(settings.plans)


def test_init_json_is_unchanged(cli):
    result = cli("init", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["revision_before", "revision", "plans"]
    assert data["revision"] == data["revision_before"]
