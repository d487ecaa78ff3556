"""Bad input gets one clear line, the documented exit code, no traceback, and writes nothing."""

from __future__ import annotations

import pytest
from helpers import one_error_line, snapshot


@pytest.fixture
def alice(cli):
    assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
    return "u1"


AMOUNTS = {
    "0": "error: amount must be a positive whole number of credits, got 0",
    "-5": "error: amount must be a positive whole number of credits, got -5",
    "1.5": "error: amount must be a whole number of credits, got '1.5'",
    "abc": "error: amount must be a whole number of credits, got 'abc'",
    "1e3": "error: amount must be a whole number of credits, got '1e3'",
    "": "error: amount must be a whole number of credits, got ''",
    "1000001": "error: amount 1000001 is larger than the limit of 1000000 credits "
    "(credits.max_amount)",
    "99999999999999999999999999": "error: amount 99999999999999999999999999 is larger than "
    "the limit of 1000000 credits (credits.max_amount)",
}


@pytest.mark.parametrize(
    "command",
    [
        ("credits", "deduct", "u1"),
        ("credits", "check", "u1"),
        ("credits", "reserve", "u1"),
        ("credits", "grant", "u1", "{}", "--reason", "promo"),
    ],
)
def test_bad_amounts(cli, alice, engine, command):
    before = snapshot(engine)
    for amount, message in AMOUNTS.items():
        args = [a.replace("{}", amount) for a in command] if "{}" in command else [*command, amount]
        result = cli(*args)
        assert result.exit_code == 2, (amount, result.output)
        assert one_error_line(result.stderr) == message
        assert result.stdout == ""
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("delta", "message"),
    [
        (
            "0",
            "error: delta must not be zero: give a positive number to add credits or a negative "
            "one to remove them",
        ),
        ("2.5", "error: delta must be a whole number of credits, got '2.5'"),
        (
            "-99999999999",
            "error: delta -99999999999 is larger than the limit of 1000000 credits "
            "(credits.max_amount)",
        ),
    ],
)
def test_bad_adjust_deltas(cli, alice, engine, delta, message):
    before = snapshot(engine)
    result = cli("credits", "adjust", "u1", delta, "--reason", "fix")
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == message
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    "command",
    [
        ("credits", "deduct", "ghost", "1"),
        ("credits", "grant", "ghost", "1", "--reason", "x"),
        ("credits", "adjust", "ghost", "1", "--reason", "x"),
        ("credits", "reserve", "ghost", "1"),
        ("credits", "deduct", "ghost@example.com", "1", "--key", "k"),
        ("run", "ghost", "1", "--", "true"),
    ],
)
def test_unknown_user_writes_nothing(cli, alice, engine, command):
    before = snapshot(engine)
    result = cli(*command)
    assert result.exit_code == 4
    assert one_error_line(result.stderr).startswith("error: unknown user 'ghost")
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "a@b",
        "a b@example.com",
        "@example.com",
        "alice@@example.com",
        "x" * 250 + "@example.com",
    ],
)
def test_malformed_email(cli, engine, email):
    before = snapshot(engine)
    result = cli("users", "add", email)
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        f"error: email {email!r} is malformed; expected something like name@example.com"
    )
    assert snapshot(engine) == before


@pytest.mark.parametrize("again", ["alice@example.com", "ALICE@Example.COM", " Alice@example.com "])
def test_duplicate_email_in_any_case(cli, alice, engine, again):
    before = snapshot(engine)
    result = cli("users", "add", again)
    assert result.exit_code == 5
    assert one_error_line(result.stderr) == (
        "error: a user with email alice@example.com already exists (id u1)"
    )
    assert snapshot(engine) == before


def test_duplicate_id_and_bad_id(cli, alice, engine):
    before = snapshot(engine)
    same_id = cli("users", "add", "other@example.com", "--id", "u1")
    assert same_id.exit_code == 5
    assert one_error_line(same_id.stderr) == (
        "error: a user with id 'u1' already exists (alice@example.com)"
    )
    bad_id = cli("users", "add", "other@example.com", "--id", "has space")
    assert bad_id.exit_code == 2
    one_error_line(bad_id.stderr)
    unknown_plan = cli("users", "add", "other@example.com", "--plan", "gold")
    assert unknown_plan.exit_code == 2
    assert one_error_line(unknown_plan.stderr).startswith("error: unknown plan 'gold'")
    assert snapshot(engine) == before


def test_grant_with_a_past_or_malformed_expiry(cli, alice, engine):
    before = snapshot(engine)
    past = cli("credits", "grant", "u1", "5", "--reason", "x", "--expires", "2001-01-01")
    assert past.exit_code == 2
    assert one_error_line(past.stderr) == (
        "error: expiry 2001-01-01T00:00:00Z is in the past; give a future date"
    )
    garbled = cli("credits", "grant", "u1", "5", "--reason", "x", "--expires", "next week")
    assert garbled.exit_code == 2
    one_error_line(garbled.stderr)
    assert snapshot(engine) == before


# --- configuration and database -------------------------------------------------------------


def test_unknown_config_key_names_the_key(cli, alice, engine, tmp_path):
    config = tmp_path / "creditctl.toml"
    config.write_text("[credits]\nwelcome_grnt = 10\n")
    before = snapshot(engine)
    result = cli("credits", "deduct", "u1", "1", env={"CREDITCTL_CONFIG": str(config)})
    assert result.exit_code == 7
    line = one_error_line(result.stderr)
    assert line.startswith("error: config key credits.welcome_grnt is not a known setting")
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("[credits\n", "error: config file {path} is not valid TOML"),
        (
            '[credits]\nmax_amount = "lots"\n',
            "error: config key credits.max_amount must be a whole number",
        ),
        (
            '[credits]\nhold_ttl = "forever"\n',
            "error: config key credits.hold_ttl must be a duration",
        ),
        ("[plans.free]\ncredits = -1\n", "error: config key plans.free.credits must be"),
    ],
)
def test_invalid_config_file(cli, alice, engine, tmp_path, text, start):
    config = tmp_path / "creditctl.toml"
    config.write_text(text)
    before = snapshot(engine)
    result = cli("credits", "deduct", "u1", "1", env={"CREDITCTL_CONFIG": str(config)})
    assert result.exit_code == 7
    assert one_error_line(result.stderr).startswith(start.format(path=config))
    assert snapshot(engine) == before


def test_unreadable_and_missing_config_file(cli, alice, engine, tmp_path):
    before = snapshot(engine)
    directory = tmp_path / "a-directory.toml"
    directory.mkdir()
    unreadable = cli("--config", str(directory), "credits", "deduct", "u1", "1")
    assert unreadable.exit_code == 7
    assert one_error_line(unreadable.stderr).startswith(
        f"error: config file {directory} cannot be read"
    )
    missing = cli("--config", str(tmp_path / "nope.toml"), "credits", "deduct", "u1", "1")
    assert missing.exit_code == 7
    assert one_error_line(missing.stderr).startswith(
        f"error: config file {tmp_path / 'nope.toml'} does not exist"
    )
    assert snapshot(engine) == before


def test_bad_value_in_the_environment_names_the_key(cli, alice, engine):
    result = cli("credits", "deduct", "u1", "1", env={"CREDITCTL_MAX_AMOUNT": "many"})
    assert result.exit_code == 7
    assert one_error_line(result.stderr) == (
        "error: config key credits.max_amount must be a whole number, got 'many'"
    )


@pytest.mark.parametrize(
    "command",
    [("init",), ("credits", "deduct", "u1", "1"), ("credits", "balance", "u1"), ("users", "list")],
)
def test_sqlite_file_in_a_missing_directory(cli, tmp_path, command):
    url = f"sqlite:///{tmp_path}/missing/dir/creditctl.db"
    result = cli(*command, env={"CREDITCTL_DATABASE_URL": url})
    assert result.exit_code == 7
    assert one_error_line(result.stderr) == (
        f"error: database directory {tmp_path}/missing/dir does not exist; create it or "
        "point database.url at an existing directory"
    )
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    "command",
    [
        ("init",),
        ("credits", "deduct", "u1", "1"),
        ("credits", "check", "u1", "1"),
        ("users", "list"),
        ("credits", "reserve", "u1", "1"),
    ],
)
def test_postgresql_that_does_not_answer(cli, command):
    url = "postgresql://postgres:s3cret@127.0.0.1:1/creditctl"
    result = cli(*command, env={"CREDITCTL_DATABASE_URL": url})
    assert result.exit_code == 7
    line = one_error_line(result.stderr)
    assert line.startswith(
        "error: database postgresql+psycopg://postgres:***@127.0.0.1:1/creditctl is unreachable ("
    )
    assert "s3cret" not in result.output


def test_database_url_that_is_not_a_url(cli):
    result = cli("users", "list", env={"CREDITCTL_DATABASE_URL": "mysql://x@y/z"})
    assert result.exit_code == 7
    assert one_error_line(result.stderr) == (
        "error: database.url uses 'mysql'; creditctl supports sqlite and postgresql"
    )


def test_uninitialised_sqlite_file_is_not_created(cli, tmp_path):
    path = tmp_path / "fresh.db"
    result = cli(
        "credits", "deduct", "u1", "1", env={"CREDITCTL_DATABASE_URL": f"sqlite:///{path}"}
    )
    assert result.exit_code == 7
    assert "creditctl init" in one_error_line(result.stderr)
    assert not path.exists()
