"""Terminal injection: free text with control characters is refused at input, never stored.

An ESC in an email, a name, a reason or an operator's name was stored, then printed raw by
`users list`, `audit log` and `credits history`, where it can recolour or retitle the
terminal of whoever looks. Every free-text input goes through one check in creditctl.parsing.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from helpers import one_error_line, snapshot

from creditctl.config.settings import load_settings
from creditctl.errors import ConfigError

ESC = "\x1b"


def refused(what: str, code: str, position: int) -> str:
    return f"error: {what} contains a control character ({code} at position {position}); remove it"


CASES = [
    (("users", "add", f"a{ESC}[31m@example.com"), {}, refused("email", "U+001B", 2)),
    (
        ("users", "add", "b@example.com", "--name", f"Bob{ESC}]0;owned\x07"),
        {},
        refused("name", "U+001B", 4),
    ),
    (
        ("credits", "grant", "u1", "5", "--reason", f"make-good{ESC}[2J"),
        {},
        refused("reason", "U+001B", 10),
    ),
    (
        ("credits", "adjust", "u1", "-1", "--reason", "two\nlines"),
        {},
        refused("reason", "U+000A", 4),
    ),
    (
        ("credits", "reverse", "1", "--reason", "\u202eevil"),
        {},
        refused("reason", "U+202E", 1),
    ),
    (
        ("--operator", f"op{ESC}[1m", "credits", "grant", "u1", "5", "--reason", "ok"),
        {},
        refused("operator name (--operator or CREDITCTL_OPERATOR)", "U+001B", 3),
    ),
    (
        ("credits", "deduct", "u1", "1"),
        {"CREDITCTL_OPERATOR": "op\x9b1m"},
        refused("operator name (--operator or CREDITCTL_OPERATOR)", "U+009B", 3),
    ),
    (("credits", "deduct", "u1", "1", "--ref", f"r{ESC}"), {}, refused("reference", "U+001B", 2)),
    (("users", "search", f"a{ESC}"), {}, refused("search text", "U+001B", 2)),
    (("credits", "balance", f"u1{ESC}"), {}, refused("user", "U+001B", 3)),
    (("features", "check", "u1", f"ads{ESC}[8m"), {}, refused("feature", "U+001B", 4)),
    (
        ("credits", "deduct", "u1", "1", "--ref", "r\udc9b"),
        {},
        "error: reference contains a byte that is not UTF-8 (at position 2); remove it",
    ),
]


@pytest.fixture
def alice(cli):
    assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
    return "u1"


@pytest.mark.parametrize(
    ("command", "env", "message"), CASES, ids=[m.split(" contains")[0][7:] for *_, m in CASES]
)
def test_control_characters_are_refused(cli, alice, engine, command, env, message):
    before = snapshot(engine)
    result = cli(*command, env=env)
    assert result.exit_code == 2, result.output
    assert one_error_line(result.stderr) == message
    assert ESC not in result.output and "\x9b" not in result.output
    assert snapshot(engine) == before


def test_text_stored_before_the_check_is_printed_escaped(cli, alice, engine):
    """Rows written by an older version may hold an ESC: tables and fields show it escaped,
    and a name that looks like Rich markup is shown as typed."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET name = :name"), {"name": f"[red]Al{ESC}[2Jice"})
    for command in (("users", "list"), ("users", "show", "u1"), ("users", "search", "alice")):
        result = cli(*command)
        assert result.exit_code == 0, result.output
        assert ESC not in result.output
        assert "[red]Al\\x1b[2Jice" in result.output


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[plans.free]\ncredits = 1\nfeatures = ["ads\\u001b[5m"]\n', "plans.free.features"),
        ('[plans.free]\ncredits = 1\nname = "Free\\u001b"\n', "plans.free.name"),
        ('[credits]\ndefault_plan = "f\\u001b"\n[plans."f\\u001b"]\ncredits = 1\n', "plans."),
    ],
)
def test_control_characters_in_plans_are_a_configuration_error(tmp_path, toml, key):
    path = tmp_path / "creditctl.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        load_settings(str(path), environ={}, dotenv_file="/nonexistent/.env")
    assert error.value.message.startswith(f"config key {key}")
    assert "contains a control character (U+001B" in error.value.message
    assert ESC not in error.value.message
