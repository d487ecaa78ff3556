"""`creditctl webhooks list|show|replay|backfill` and a failure fixed by a replay."""

from __future__ import annotations

import json

from test_webhooks_receive import paid_invoice_event, plan_grants
from webhook_helpers import SECRET, event, now_utc, signed
from webhook_support import gateway

from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.receive import receive

ENV = {"STRIPE_WEBHOOK_SECRET": SECRET}


def test_a_failed_event_is_listed_and_fixed_by_replay_failed(cli, engine, alice, synced):
    broken = WebhookConfig(
        secrets=(SECRET,), fetch_latest=True, gateway=gateway("http://127.0.0.1:9")
    )
    evt = paid_invoice_event()
    assert receive(engine, *signed(evt), broken).outcome.failed
    listed = cli("webhooks", "list", "--status", "failed", "--json", env=ENV)
    assert listed.exit_code == 0
    [row] = json.loads(listed.stdout)
    assert row["id"] == evt["id"] and "could not reach Stripe" in row["last_error"]
    replayed = cli("webhooks", "replay", "--failed", env=ENV)
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout.startswith(f"{evt['id']} invoice.paid: processed")
    assert plan_grants(engine) == [1000]
    assert json.loads(cli("webhooks", "list", "--status", "failed", "--json").stdout) == []
    shown = json.loads(cli("webhooks", "show", evt["id"], "--json").stdout)
    assert shown["status"] == "processed" and shown["attempts"] == 2
    assert shown["last_error"] is None
    audit = cli("audit", "verify")
    assert audit.exit_code == 0, audit.output


def test_replay_leaves_processed_events_alone_unless_forced(cli, engine, alice, synced, config):
    evt = paid_invoice_event()
    receive(engine, *signed(evt), config)
    again = cli("webhooks", "replay", evt["id"], "--json")
    assert json.loads(again.stdout)[0] | {"detail": None} == {
        "event_id": evt["id"],
        "type": "invoice.paid",
        "status": "processed",
        "ran": False,
        "detail": None,
        "user_id": "alice",
    }
    forced = cli("webhooks", "replay", evt["id"], "--force", "--json")
    assert json.loads(forced.stdout)[0]["ran"] is True
    assert cli("webhooks", "replay", "--since", "2020-01-01", "--force").exit_code == 0
    assert plan_grants(engine) == [1000]
    assert cli("audit", "verify").exit_code == 0


def test_replay_that_fails_again_exits_nonzero(cli, engine, alice, synced):
    broken = WebhookConfig(
        secrets=(SECRET,), fetch_latest=True, gateway=gateway("http://127.0.0.1:9")
    )
    receive(engine, *signed(paid_invoice_event()), broken)
    result = cli(
        "webhooks",
        "replay",
        "--failed",
        env={
            "STRIPE_API_KEY": "sk_test_x_SECRET",
            "STRIPE_API_BASE": "http://127.0.0.1:9",
            "CREDITCTL_WEBHOOK_FETCH_LATEST": "true",
        },
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: 1 event(s) failed again; see `creditctl webhooks list --status failed`"
    )
    assert "SECRET" not in result.output


def test_list_filters_and_show_pretty_prints(cli, engine, config):
    first = event("charge.refunded", {"id": "ch_1"}, created=now_utc())
    receive(engine, *signed(first), config)
    table = cli("webhooks", "list")
    assert table.exit_code == 0 and first["id"] in table.stdout
    assert json.loads(cli("webhooks", "list", "--type", "invoice.paid", "--json").stdout) == []
    assert len(json.loads(cli("webhooks", "list", "--since", "2020-01-01", "--json").stdout)) == 1
    shown = cli("webhooks", "show", first["id"])
    assert '"type": "charge.refunded"' in shown.stdout and "ignored" in shown.stdout
    assert '\n  "data": {' in shown.stdout


def test_refusals_name_the_rule(cli):
    missing = cli("webhooks", "show", "evt_nope")
    assert (missing.exit_code, missing.stderr) == (
        4,
        "error: no stored webhook event 'evt_nope'; see `creditctl webhooks list`\n",
    )
    bad_status = cli("webhooks", "list", "--status", "done")
    assert (bad_status.exit_code, bad_status.stderr) == (
        2,
        "error: --status must be one of pending, processed, failed, ignored, deferred, unmapped\n",
    )
    nothing = cli("webhooks", "replay")
    assert (nothing.exit_code, nothing.stderr) == (
        2,
        "error: name one EVENT_ID, or pass --failed or --since DATE\n",
    )
    no_key = cli("webhooks", "backfill", "--since", "2026-01-01")
    assert no_key.exit_code == 7


def test_every_webhook_command_has_help_with_an_example(cli):
    for command in (
        ["webhooks", "list"],
        ["webhooks", "show"],
        ["webhooks", "replay"],
        ["webhooks", "backfill"],
        ["daemon"],
    ):
        result = cli(*command, "--help")
        assert result.exit_code == 0 and "Example:" in result.stdout, command


def test_handlers_wait_on_stripe_for_a_bounded_time():
    from creditctl.config.settings import load_settings
    from creditctl.webhooks.config import WebhookConfig

    settings = load_settings(
        environ={"STRIPE_API_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
    )
    bound = WebhookConfig.from_settings(settings).gateway
    assert (bound.timeout_seconds, bound.retries) == (5.0, 1)
    assert bound.timeout_seconds * (bound.retries + 1) < settings["database.busy_timeout_ms"] / 1000
