"""How refusals and mistakes look: one line on stderr, and data on stdout under --json."""

import json

from helpers import new_user, one_error_line, snapshot

from creditctl.config.masking import mask_url
from creditctl.config.settings import load_settings


def test_a_refused_deduct_under_json_says_why_on_stdout(cli, engine, policy):
    new_user(engine, policy, "u1")
    result = cli("credits", "deduct", "u1", "500", "--json")
    assert result.exit_code == 3
    refusal = json.loads(result.stdout)
    assert (refusal["kind"], refusal["available"], refusal["needed"], refusal["exit_code"]) == (
        "InsufficientCredits",
        105,
        500,
        3,
    )
    assert one_error_line(result.stderr).startswith("error: insufficient credits: u1 has 105")


def test_usage_mistakes_are_one_line_with_where_to_look(cli):
    missing = cli("credits", "deduct")
    assert missing.exit_code == 2
    assert one_error_line(missing.stderr) == (
        "error: Missing argument 'user'. (see `creditctl credits deduct --help`)"
    )
    unknown = cli("nosuch")
    assert unknown.exit_code == 2
    assert one_error_line(unknown.stderr) == (
        "error: No such command 'nosuch'. (see `creditctl --help`)"
    )


def test_bad_references_and_digits_are_refused_before_anything_is_written(cli, engine, policy):
    new_user(engine, policy, "u1")
    before = snapshot(engine)
    long_ref = cli("credits", "deduct", "u1", "1", "--ref", "r" * 201)
    assert long_ref.exit_code == 2
    assert "reference must be 1 to 200 characters" in one_error_line(long_ref.stderr)
    fullwidth = cli("credits", "deduct", "u1", "\uff15")
    assert fullwidth.exit_code == 2
    assert snapshot(engine) == before


def test_a_config_file_that_is_not_utf8_is_a_configuration_error(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe[credits]\n")
    result = cli("--config", str(bad), "config", "show")
    assert result.exit_code == 7
    assert one_error_line(result.stderr) == (
        f"error: config file {bad} is not UTF-8 text; save it as UTF-8"
    )


def test_a_password_in_the_url_query_is_masked_too():
    url = "postgresql://u:pw1@db/x?sslmode=require&password=pw2"
    assert mask_url(url) == "postgresql://u:***@db/x?sslmode=require&password=***"
    shown = load_settings(environ={"CREDITCTL_DATABASE_URL": url}).masked()
    assert "pw1" not in str(shown) and "pw2" not in str(shown)
