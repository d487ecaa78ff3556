"""No value of a secret key is printed: not in configuration errors, not in `config show`.

`api_key = ["sk_live_..."]` and a database URL inside a list were echoed in the error
(`got ['sk_live_...']`); a webhook secret of the wrong type was accepted. A secret of the
wrong type is refused with a message naming the key and the expected type only.
"""

from __future__ import annotations

import pytest
from helpers import one_error_line
from typer.testing import CliRunner

from creditctl.cli.app import app
from creditctl.config.settings import load_settings

SECRET = "sk_live_TOPSECRET_51Hx"
HOOK = "whsec_ALSOSECRET_9"
PASSWORD = "hunter2secret"


@pytest.fixture
def run(tmp_path, monkeypatch):
    """creditctl with only the given config file (or none) and environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "CREDITCTL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str, toml: str | None = None, env: dict[str, str] | None = None):
        base = {"CREDITCTL_CONFIG": "", "CREDITCTL_ENV_FILE": str(tmp_path / "no.env")}
        if toml is not None:
            (tmp_path / "creditctl.toml").write_text(toml)
            base["CREDITCTL_CONFIG"] = str(tmp_path / "creditctl.toml")
        base["CREDITCTL_OPERATOR"] = "tester"
        return CliRunner().invoke(app, list(args), env={**base, **(env or {})})

    return invoke


WRONG_TYPES = [
    (
        f'[stripe]\napi_key = ["{SECRET}"]\n',
        "error: config key stripe.api_key must be a string, not a list (not shown)",
    ),
    (
        "[stripe]\napi_key = 4242424242\n",
        "error: config key stripe.api_key must be a string, not a number (not shown)",
    ),
    (
        f'[database]\nurl = ["postgresql://app:{PASSWORD}@db.internal/credits"]\n',
        "error: config key database.url must be a string such as sqlite:///creditctl.db, "
        "not a list",
    ),
    (
        "[stripe]\nwebhook_secret = 12345\n",
        "error: config key stripe.webhook_secret must be a string or a list of strings, "
        "not a number (not shown)",
    ),
    (
        f'[stripe]\nwebhook_secret = [{{ s = "{HOOK}" }}]\n',
        "error: config key stripe.webhook_secret must be a string or a list of strings, "
        "not a list holding other things (not shown)",
    ),
    (
        "[stripe]\nwebhook_secret = true\n",
        "error: config key stripe.webhook_secret must be a string or a list of strings, "
        "not true or false (not shown)",
    ),
]


@pytest.mark.parametrize(("toml", "message"), WRONG_TYPES)
@pytest.mark.parametrize(
    "command", [("config", "show"), ("config", "show", "--json"), ("users", "list")]
)
def test_a_secret_of_the_wrong_type_is_refused_unseen(run, toml, message, command):
    result = run(*command, toml=toml)
    assert result.exit_code == 7, result.output
    assert one_error_line(result.stderr) == message
    for secret in (SECRET, "TOPSECRET", HOOK, "ALSOSECRET", PASSWORD, "12345", "4242424242"):
        assert secret not in result.output


def test_webhook_secrets_as_a_list_of_strings_are_kept(tmp_path):
    path = tmp_path / "creditctl.toml"
    path.write_text(f'[stripe]\nwebhook_secret = ["{HOOK}", " whsec_two "]\n')
    settings = load_settings(str(path), environ={}, dotenv_file="/nonexistent/.env")
    assert settings["stripe.webhook_secret"] == (HOOK, "whsec_two")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app:{PASSWORD}@[::1",
        f"postgresql://app:{PASSWORD}@db.internal:99999/credits",
        f"postgresql+asyncpg://app:{PASSWORD}@db.internal/credits",
        f"postgresql:app:{PASSWORD}@db.internal/credits",
    ],
)
def test_a_password_in_a_bad_database_url_is_never_shown(run, url):
    for command in (("config", "show"), ("users", "list"), ("credits", "deduct", "u1", "1")):
        result = run(*command, env={"CREDITCTL_DATABASE_URL": url})
        assert result.exit_code == 7, result.output
        one_error_line(result.stderr)
        assert PASSWORD not in result.output


def test_settings_do_not_show_secrets_in_their_repr():
    settings = load_settings(
        environ={
            "STRIPE_API_KEY": SECRET,
            "STRIPE_WEBHOOK_SECRET": HOOK,
            "CREDITCTL_DATABASE_URL": f"postgresql://app:{PASSWORD}@db/credits",
        },
        dotenv_file="/nonexistent/.env",
    )
    assert SECRET not in repr(settings) and HOOK not in repr(settings)
    assert PASSWORD not in repr(settings)
