"""Every billing command's output, table and --json, byte for byte, against cli_outputs.txt.

One scenario walks plans, customers, links and subscription changes on the recorded server,
whose ids and times are deterministic; only timestamps from the application clock (written
during the run) are replaced by <now>. A change of wording, column or JSON key shows up here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from creditctl.billing.subscriptions import apply_stripe_subscription
from creditctl.clock import utcnow
from creditctl.ledger.transactions import run_write

EXPECTED = Path(__file__).with_name("cli_outputs.txt")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _written_now(text: str, started: datetime, ended: datetime) -> str:
    """Timestamps from the run's own clock (between its start and end) are shown as <now>."""
    since, until = started - timedelta(seconds=1), ended + timedelta(seconds=1)

    def replace(match: re.Match[str]) -> str:
        moment = datetime.strptime(match[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return "<now>" if since <= moment <= until else match[0]

    return STAMP.sub(replace, text)


def _config(tmp_path: Path) -> str:
    """pro at a new amount, ultimate gone: drift and a plan not in the config."""
    path = tmp_path / "drift.toml"
    path.write_text("""
[plans.free]
credits = 100
features = ["basic_posts", "analytics"]
[plans.pro]
credits = 1000
features = ["basic_posts", "analytics", "advanced_workflows", "scheduling"]
amount = 2900
[plans.pro_plus]
credits = 5000
features = ["basic_posts", "analytics", "advanced_workflows", "scheduling", "ads"]
amount = 4900
""")
    return str(path)


def _scenario(cli, recorded, env, engine, tmp_path) -> list[tuple[str, Any]]:
    """(command line, result) of each step, in order."""
    steps: list[tuple[str, Any]] = []

    def run(*args: str, step_env: dict[str, str] | None = None) -> Any:
        result = cli(*args, env=step_env if step_env is not None else env)
        steps.append((" ".join(args), result))
        return result

    assert cli("users", "add", "a@example.com", "--id", "u1", "--name", "Ann").exit_code == 0
    for args in (("--json",), (), ("--local", "--json"), ("--local",)):
        run("plans", "list", *args)
    for args in (("--dry-run", "--json"), ("--dry-run",), ()):
        run("plans", "sync", *args)
    run("plans", "sync", "--json")
    run("plans", "list", "--json")
    run("plans", "list")
    drift = {**env, "CREDITCTL_CONFIG": _config(tmp_path)}
    for args in (("list", "--json"), ("list",), ("sync", "--dry-run", "--json")):
        run("plans", *args, step_env=drift)
    run("plans", "sync", "--dry-run", step_env=drift)

    run("subscriptions", "show", "u1", "--remote")
    run("subscriptions", "show", "u1", "--remote", "--json")
    created = run("stripe", "customer", "u1", "--json")
    run("stripe", "customer", "u1")
    run("stripe", "checkout", "u1", "--plan", "pro", "--json")
    run("stripe", "checkout", "u1", "--plan", "pro_plus")
    run("stripe", "portal", "u1", "--json")
    run("stripe", "portal", "u1")

    customer = json.loads(created.stdout)["customer_id"]
    prices = {p["lookup_key"]: p["id"] for p in recorded.objects("price")}
    sub = recorded.add_subscription(customer, prices["creditctl_pro"])
    run_write(
        engine,
        lambda conn: apply_stripe_subscription(
            conn, sub, user_id="u1", actor="evt_paid", now=utcnow(), paid=True
        ),
    )
    run("subscriptions", "show", "u1", "--json")
    run("subscriptions", "show", "u1")
    run("subscriptions", "show", "u1", "--remote", "--json")
    run("subscriptions", "show", "u1", "--remote")
    run("stripe", "checkout", "u1", "--plan", "pro")
    run("subscriptions", "change", "u1", "--plan", "pro_plus")
    run("subscriptions", "change", "u1", "--plan", "pro", "--proration", "none", "--json")
    run("subscriptions", "change", "u1", "--plan", "pro")
    run("subscriptions", "resume", "u1")
    run("subscriptions", "cancel", "u1", "--json")
    run("subscriptions", "cancel", "u1")
    run("subscriptions", "resume", "u1", "--json")
    run("subscriptions", "cancel", "u1", "--now")
    run("subscriptions", "show", "u1", "--remote")
    return steps


def _transcript(steps) -> str:
    parts = []
    for command, result in steps:
        parts.append(
            f"$ creditctl {command}\n[exit {result.exit_code}]\n"
            f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
        )
    return "".join(parts)


def test_billing_commands_print_exactly_as_recorded(cli, recorded, recorded_env, engine, tmp_path):
    started = utcnow()
    steps = _scenario(cli, recorded, recorded_env, engine, tmp_path)
    transcript = _written_now(_transcript(steps), started, utcnow())
    assert transcript == EXPECTED.read_text()
