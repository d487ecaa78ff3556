"""Configuration: flag > environment > .env > creditctl.toml > default; secrets never shown."""

from __future__ import annotations

import json

import pytest
from helpers import one_error_line

from creditctl.config.settings import load_settings
from creditctl.errors import ConfigError

SECRET = "sk_test_TOPSECRET_51Hx"
HOOK_SECRET = "whsec_ALSOSECRET_9"


@pytest.fixture
def layers(tmp_path):
    """A toml file and a .env file that both set database.url and credits.welcome_grant."""
    toml = tmp_path / "creditctl.toml"
    toml.write_text(
        '[database]\nurl = "sqlite:///toml.db"\n'
        "[credits]\nwelcome_grant = 1\nlow_balance_threshold = 11\n"
        "max_amount = 111\n"
    )
    dotenv = tmp_path / "layers.env"
    dotenv.write_text(
        "CREDITCTL_DATABASE_URL=sqlite:///dotenv.db\n"
        "CREDITCTL_WELCOME_GRANT=2\nCREDITCTL_LOW_BALANCE_THRESHOLD=22\n"
    )
    return str(toml), str(dotenv)


def test_each_layer_wins_over_the_ones_below(layers):
    toml, dotenv = layers
    environ = {"CREDITCTL_DATABASE_URL": "sqlite:///env.db", "CREDITCTL_WELCOME_GRANT": "3"}
    settings = load_settings(
        toml, flags={"database.url": "sqlite:///flag.db"}, environ=environ, dotenv_file=dotenv
    )
    expected = {
        "database.url": ("sqlite:///flag.db", "flag"),
        "credits.welcome_grant": (3, "environment"),
        "credits.low_balance_threshold": (22, ".env"),
        "credits.max_amount": (111, toml),
        "daemon.port": (8787, "default"),
    }
    assert {k: (settings[k], settings.sources[k]) for k in expected} == expected
    without_flag = load_settings(toml, environ=environ, dotenv_file=dotenv)
    assert without_flag.database_url == "sqlite:///env.db"
    without_env = load_settings(toml, environ={}, dotenv_file=dotenv)
    assert (without_env.database_url, without_env["credits.welcome_grant"]) == (
        "sqlite:///dotenv.db",
        2,
    )
    only_toml = load_settings(toml, environ={}, dotenv_file="/nonexistent/.env")
    assert (only_toml.database_url, only_toml["credits.welcome_grant"]) == ("sqlite:///toml.db", 1)
    defaults = load_settings(None, environ={}, dotenv_file="/nonexistent/.env")
    assert (defaults.database_url, defaults["credits.welcome_grant"]) == (
        "sqlite:///creditctl.db",
        5,
    )


def test_config_file_from_the_environment_and_the_working_directory(tmp_path, monkeypatch):
    named = tmp_path / "named.toml"
    named.write_text("[credits]\nwelcome_grant = 42\n")
    settings = load_settings(
        None, environ={"CREDITCTL_CONFIG": str(named)}, dotenv_file="/nonexistent/.env"
    )
    assert settings["credits.welcome_grant"] == 42
    monkeypatch.chdir(tmp_path)
    (tmp_path / "creditctl.toml").write_text("[credits]\nwelcome_grant = 7\n")
    assert load_settings(None, environ={}, dotenv_file="/x/.env")["credits.welcome_grant"] == 7


def test_precedence_through_the_cli(cli, database_url, tmp_path):
    toml = tmp_path / "creditctl.toml"
    toml.write_text(
        '[database]\nurl = "sqlite:///from-toml.db"\n'
        "[credits]\nwelcome_grant = 9\nlow_balance_threshold = 99\n"
    )
    dotenv = tmp_path / "cli.env"
    dotenv.write_text("CREDITCTL_LOW_BALANCE_THRESHOLD=50\n")
    env = {
        "CREDITCTL_CONFIG": str(toml),
        "CREDITCTL_ENV_FILE": str(dotenv),
        "CREDITCTL_WELCOME_GRANT": "8",
    }
    shown = json.loads(
        cli("--database-url", database_url, "config", "show", "--json", env=env).stdout
    )
    values, sources = shown["settings"], shown["sources"]
    assert (values["credits.welcome_grant"], sources["credits.welcome_grant"]) == (8, "environment")
    assert (values["credits.low_balance_threshold"], sources["credits.low_balance_threshold"]) == (
        50,
        ".env",
    )
    assert sources["database.url"] == "flag"
    assert shown["config_file"] == str(toml)
    # The flag really is the database used: the user is created there, with the env's grant.
    added = cli("--database-url", database_url, "users", "add", "p@example.com", "--json", env=env)
    assert added.exit_code == 0, added.stderr
    assert json.loads(added.stdout)["balance"] == 108


@pytest.mark.parametrize("where", ["environment", ".env", "toml"])
def test_config_show_never_prints_secrets(cli, tmp_path, where):
    env = {"CREDITCTL_CONFIG": "", "CREDITCTL_ENV_FILE": str(tmp_path / "no.env")}
    if where == "environment":
        env.update({"STRIPE_API_KEY": SECRET, "STRIPE_WEBHOOK_SECRET": HOOK_SECRET})
    elif where == ".env":
        dotenv = tmp_path / "secrets.env"
        dotenv.write_text(f"STRIPE_API_KEY={SECRET}\nSTRIPE_WEBHOOK_SECRET={HOOK_SECRET}\n")
        env["CREDITCTL_ENV_FILE"] = str(dotenv)
    else:
        toml = tmp_path / "creditctl.toml"
        toml.write_text(f'[stripe]\napi_key = "{SECRET}"\nwebhook_secret = "{HOOK_SECRET}"\n')
        env["CREDITCTL_CONFIG"] = str(toml)
    for args in (("config", "show"), ("config", "show", "--json")):
        result = cli(*args, env=env)
        assert result.exit_code == 0, result.stderr
        assert SECRET not in result.output and "TOPSECRET" not in result.output
        assert HOOK_SECRET not in result.output and "ALSOSECRET" not in result.output
    shown = json.loads(cli("config", "show", "--json", env=env).stdout)
    assert shown["settings"]["stripe.api_key"] == "<set>"
    assert shown["settings"]["stripe.webhook_secret"] == "<1 set>"


def test_config_show_masks_the_database_password(cli):
    url = "postgresql://app:hunter2secret@db.internal:5432/credits"
    result = cli("config", "show", "--json", env={"CREDITCTL_DATABASE_URL": url})
    assert result.exit_code == 0
    assert "hunter2secret" not in result.output
    assert json.loads(result.stdout)["settings"]["database.url"] == (
        "postgresql://app:***@db.internal:5432/credits"
    )


def test_secret_in_a_bad_config_value_is_not_echoed(cli, tmp_path):
    toml = tmp_path / "creditctl.toml"
    toml.write_text(f'[stripe]\napi_key = "{SECRET}"\n[credits]\nmax_amount = "x"\n')
    result = cli("config", "show", env={"CREDITCTL_CONFIG": str(toml)})
    assert result.exit_code == 7
    assert SECRET not in result.output
    one_error_line(result.stderr)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[credits]\nwelcome = 1\n", "credits.welcome"),
        ('colour = "blue"\n', "colour"),
        ("[plans.free]\ncredits = 100\nprice = 5\n", "plans.free.price"),
        ('[credits]\ndefault_plan = "gold"\n', "credits.default_plan"),
    ],
)
def test_unknown_or_invalid_key_is_named(tmp_path, toml, key):
    path = tmp_path / "creditctl.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        load_settings(str(path), environ={}, dotenv_file="/nonexistent/.env")
    assert f"config key {key} " in error.value.message
    assert "\n" not in error.value.message


def test_plans_from_the_toml_replace_the_defaults(tmp_path):
    path = tmp_path / "creditctl.toml"
    path.write_text(
        '[credits]\ndefault_plan = "starter"\n'
        '[plans.starter]\ncredits = 30\nfeatures = ["basic_posts"]\n'
        '[plans.max]\ncredits = "unlimited"\nfeatures = ["*"]\namount = 100\n'
    )
    plans = load_settings(str(path), environ={}, dotenv_file="/x/.env").plans
    assert {name: (p.credits, p.features) for name, p in plans.items()} == {
        "starter": (30, ("basic_posts",)),
        "max": (None, ("*",)),
    }
