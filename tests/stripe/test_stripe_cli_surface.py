"""The Stripe commands' surface: help text, a missing key, failures, and no key in any output."""

from __future__ import annotations

import socket

import pytest
from recorded_stripe import API_KEY

COMMANDS = [
    ("plans", "list"),
    ("plans", "sync"),
    ("stripe", "checkout"),
    ("stripe", "portal"),
    ("stripe", "customer"),
    ("subscriptions", "show"),
    ("subscriptions", "change"),
    ("subscriptions", "cancel"),
    ("subscriptions", "resume"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command):
    from typer.testing import CliRunner

    from creditctl.cli.app import app

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: creditctl " + " ".join(command) in result.stdout


def test_a_missing_key_is_a_configuration_error_naming_the_variable(cli, recorded):
    assert cli("users", "add", "a@example.com", "--id", "u1").exit_code == 0
    env = {"STRIPE_API_KEY": "", "STRIPE_API_BASE": recorded.url}
    for args in (
        ("stripe", "customer", "u1"),
        ("plans", "sync", "--dry-run"),
        ("subscriptions", "show", "u1", "--remote"),
    ):
        result = cli(*args, env=env)
        assert result.exit_code == 7, result.output
        assert result.stderr == (
            "error: STRIPE_API_KEY is not set; put the Stripe secret key "
            "in the environment or .env as STRIPE_API_KEY=sk_...\n"
        )
    assert recorded.requests() == []
    local = cli("plans", "list", "--local", env=env)
    assert local.exit_code == 0 and "pro" in local.stdout


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_no_output_ever_contains_the_api_key(cli, recorded, recorded_env):
    outputs = []

    def run(*args, env=recorded_env):
        result = cli(*args, env=env)
        outputs.append((args, result.exit_code, result.stdout + result.stderr))
        return result

    run("users", "add", "a@example.com", "--id", "u1")
    run("config", "show")
    run("config", "show", "--json")
    run("plans", "sync", "--dry-run")
    run("plans", "sync")
    run("plans", "list")
    run("plans", "list", "--json")
    run("stripe", "customer", "u1", "--json")
    run("stripe", "checkout", "u1", "--plan", "pro")
    run("stripe", "portal", "u1", "--json")
    customer = recorded.objects("customer")[0]["id"]
    price = next(p for p in recorded.objects("price") if p["lookup_key"] == "creditctl_pro")
    recorded.add_subscription(customer, price["id"])
    run("subscriptions", "show", "u1", "--remote")
    run("subscriptions", "change", "u1", "--plan", "pro_plus")
    run("subscriptions", "cancel", "u1")
    run("subscriptions", "resume", "u1", "--json")
    run("subscriptions", "cancel", "u1", "--now")
    run("account", "u1")
    recorded.fail_next("500", method="GET", times=3)
    assert run("subscriptions", "show", "u1", "--remote").exit_code == 6
    wrong_key = API_KEY + "WRONG"
    refused = run("stripe", "portal", "u1", env={**recorded_env, "STRIPE_API_KEY": wrong_key})
    assert refused.exit_code == 6
    assert refused.stderr.startswith("error: Stripe refused the API key; check STRIPE_API_KEY")
    unreachable = run(
        "plans",
        "sync",
        env={**recorded_env, "STRIPE_API_BASE": f"http://127.0.0.1:{_closed_port()}"},
    )
    assert unreachable.exit_code == 6
    assert unreachable.stderr.startswith("error: could not reach Stripe")

    assert [code for _, code, _ in outputs[:-3]] == [0] * (len(outputs) - 3)
    for args, _, text in outputs:
        assert API_KEY not in text, args
        assert "SECRET" not in text, args
