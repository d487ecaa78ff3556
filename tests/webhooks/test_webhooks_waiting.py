"""Events that wait (deferred, unmapped) are data, are released with what they wait for, and
every retry path finds them again: redelivery, `webhooks replay --failed`, the retry job."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from test_webhooks_ordering import Story
from test_webhooks_receive import plan_grants
from webhook_helpers import SECRET, event, price, signed
from webhook_support import LOCALSTRIPE_KEY, gateway

from creditctl.billing.subscriptions import apply_stripe_subscription
from creditctl.ledger.audit import verify as audit_verify
from creditctl.ledger.balances import balance
from creditctl.ledger.transactions import run_write
from creditctl.scheduler import jobs
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.events import list_events, show_event
from creditctl.webhooks.processing import replay
from creditctl.webhooks.receive import receive

DASHBOARD = "price_dashboard_only"  # not synced; only the subscription's item names its plan


def _dashboard_story(engine, config, **fields) -> Story:
    return Story(
        engine, config, "basil", price_obj=price(DASHBOARD, lookup_key="creditctl_pro"), **fields
    )


def _deliver(engine, evt, config):
    """One Stripe delivery; a delivery the daemon would answer 5xx for is just retried."""
    with contextlib.suppress(Exception):
        return receive(engine, *signed(evt), config).outcome
    return None


def _fail_updates_of(engine, event_id: str) -> None:
    """A database fault: every UPDATE of one stored event fails, until _heal."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                sa.text(
                    "CREATE TRIGGER fault BEFORE UPDATE ON webhook_events "
                    f"WHEN OLD.id = '{event_id}' BEGIN SELECT RAISE(ABORT, 'injected'); END"
                )
            )
            return
        conn.execute(
            sa.text(
                "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'injected'; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER fault BEFORE UPDATE ON webhook_events FOR EACH ROW "
                f"WHEN (OLD.id = '{event_id}') EXECUTE FUNCTION fault()"
            )
        )


def _heal(engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(sa.text("DROP TRIGGER fault"))
        else:
            conn.execute(sa.text("DROP TRIGGER fault ON webhook_events"))
            conn.execute(sa.text("DROP FUNCTION fault()"))


def test_a_deferred_invoice_is_listed_with_what_it_waits_for(cli, engine, alice, config):
    story = _dashboard_story(engine, config)
    evt = event("invoice.paid", story.invoice(), created=story.t0, gen="basil")
    assert receive(engine, *signed(evt), config).outcome.status == "deferred"
    [row] = json.loads(cli("webhooks", "list", "--status", "deferred", "--json").stdout)
    assert (row["id"], row["status"], row["waiting_for"]) == (evt["id"], "deferred", story.sub_id)
    table = cli("webhooks", "list")
    assert "waiting_for" in table.stdout and story.sub_id in table.stdout
    assert show_event(engine, evt["id"])["waiting_for"] == story.sub_id


def test_a_database_error_after_the_subscription_strands_no_invoice(engine, alice, config):
    story = _dashboard_story(engine, config)
    paid = event("invoice.paid", story.invoice(), created=story.t0, gen="basil")
    created = event(
        "customer.subscription.created", story.subscription(), created=story.t0, gen="basil"
    )
    assert _deliver(engine, paid, config).status == "deferred"
    _fail_updates_of(engine, paid["id"])  # releasing or re-running the invoice fails
    _deliver(engine, created, config)
    _heal(engine)
    # Stripe redelivers both; then the retry job runs, as the daemon would a while later.
    _deliver(engine, created, config)
    _deliver(engine, paid, config)
    replay(engine, config, failed=True, now=story.t0 + timedelta(minutes=5))
    assert plan_grants(engine) == [1000]
    assert {e["status"] for e in list_events(engine)} == {"processed"}
    assert audit_verify(engine)["ok"]


def test_a_deferred_invoice_whose_subscription_is_recorded_is_retried_by_the_job(
    engine, alice, config
):
    story = _dashboard_story(engine, config)
    paid = event("invoice.paid", story.invoice(), created=story.t0, gen="basil")
    assert _deliver(engine, paid, config).status == "deferred"
    # Recorded by a path that releases no webhook events (`subscriptions change` does this).
    run_write(
        engine,
        lambda conn: apply_stripe_subscription(
            conn, story.subscription(), user_id="alice", actor="op", now=story.t0
        ),
    )
    assert jobs.retry_failed_webhooks(engine, config) == 1
    assert plan_grants(engine) == [1000]
    assert show_event(engine, paid["id"])["status"] == "processed"


def test_a_redelivery_re_runs_a_waiting_event(engine, alice, config):
    story = _dashboard_story(engine, config, user_id=None)
    paid = event("invoice.paid", story.invoice(), created=story.t0, gen="basil")
    assert _deliver(engine, paid, config).status == "unmapped"
    with engine.begin() as conn:  # linked meanwhile by a path that does not release events
        conn.execute(
            sa.text("UPDATE users SET stripe_customer_id = :c WHERE id = 'alice'"),
            {"c": story.customer},
        )
    again = _deliver(engine, paid, config)
    assert again.ran and again.status == "deferred"  # mapped now; waits for its subscription
    assert show_event(engine, paid["id"])["user_id"] == "alice"


def test_the_recorded_subscription_names_the_plan_when_stripe_is_unreachable(engine, alice):
    unreachable = WebhookConfig(secrets=(SECRET,), gateway=gateway("http://127.0.0.1:9"))
    story = _dashboard_story(engine, unreachable)
    assert story.send("customer.subscription.created", story.subscription()).status == "processed"
    outcome = story.send("invoice.paid", story.invoice(), 1)
    assert outcome.status == "processed", outcome.detail
    assert plan_grants(engine) == [1000]


def test_events_of_an_unlinked_customer_run_once_checkout_links_it(engine, alice, synced, config):
    story = Story(engine, config, "basil", user_id=None)  # no metadata names the user
    assert story.send("customer.subscription.created", story.subscription()).status == "unmapped"
    assert story.send("invoice.paid", story.invoice(), 1).status == "unmapped"
    assert plan_grants(engine) == []
    session = {
        "id": "cs_late",
        "object": "checkout.session",
        "client_reference_id": "alice",
        "customer": story.customer,
        "subscription": story.sub_id,
        "metadata": {},
    }
    assert story.send("checkout.session.completed", session, 2).status == "processed"
    assert plan_grants(engine) == [1000]
    assert balance(engine, "alice").plan == "pro"
    assert {e["status"] for e in list_events(engine)} == {"processed"}
    assert audit_verify(engine)["ok"]


def test_events_of_a_customer_linked_later_by_the_cli_run_on_replay_failed(
    cli, engine, alice, synced, config, localstripe, localstripe_client
):
    customer = localstripe_client.v1.customers.create(
        params={"email": "alice@example.com", "metadata": {"creditctl_user_id": "alice"}}
    )
    story = Story(engine, config, "basil", user_id=None)
    story.customer = customer.id
    assert story.send("customer.subscription.created", story.subscription()).status == "unmapped"
    env = {"STRIPE_API_KEY": LOCALSTRIPE_KEY, "STRIPE_API_BASE": localstripe}
    linked = cli("stripe", "customer", "alice", "--json", env=env)
    assert linked.exit_code == 0, linked.output
    assert json.loads(linked.stdout)["customer_id"] == customer.id
    replayed = cli("webhooks", "replay", "--failed", env={"STRIPE_WEBHOOK_SECRET": SECRET})
    assert replayed.exit_code == 0, replayed.output
    assert "customer.subscription.created: processed" in replayed.stdout
    assert balance(engine, "alice").plan == "pro"


@pytest.mark.parametrize("waiting", ["deferred", "unmapped"])
def test_a_waiting_event_whose_wait_is_not_over_is_left_alone(engine, alice, config, waiting):
    story = _dashboard_story(engine, config, user_id=None if waiting == "unmapped" else "alice")
    assert story.send("invoice.paid", story.invoice()).status == waiting
    assert replay(engine, config, failed=True, now=story.t0 + timedelta(hours=1)) == []
