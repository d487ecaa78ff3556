"""Verification, store-first and exactly-once processing, on both backends."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import snapshot
from webhook_helpers import (
    OTHER_SECRET,
    SECRET,
    event,
    invoice,
    next_id,
    now_utc,
    period,
    signed,
)
from webhook_support import PRO_PRICE, gateway

from creditctl.errors import InvalidEvent, InvalidSignature
from creditctl.ledger.audit import verify as audit_verify
from creditctl.ledger.balances import balance
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.events import list_events, show_event
from creditctl.webhooks.receive import receive


def paid_invoice_event(user_id: str = "alice", **extra):
    start, end = period(now_utc() - timedelta(days=1))
    obj = invoice(
        "basil",
        sub_id=extra.pop("sub_id", next_id("sub")),
        customer=next_id("cus"),
        price_id=PRO_PRICE,
        start=start,
        end=end,
        user_id=user_id,
        **extra,
    )
    return event("invoice.paid", obj, created=now_utc())


def stored_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one()


def plan_grants(engine, user_id: str = "alice") -> list[int]:
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.text(
                    "SELECT amount FROM grants WHERE user_id = :u AND source = 'plan' "
                    "AND period_key LIKE 'sub_%' ORDER BY id"
                ),
                {"u": user_id},
            )
            .scalars()
            .all()
        )


def test_a_signed_event_is_stored_then_processed(engine, alice, synced, config):
    evt = paid_invoice_event()
    receipt = receive(engine, *signed(evt), config)
    assert receipt.new and receipt.outcome.status == "processed"
    stored = show_event(engine, evt["id"])
    assert stored["payload"] == evt
    assert stored["type"] == "invoice.paid" and stored["api_version"] == evt["api_version"]
    assert stored["attempts"] == 1 and stored["user_id"] == "alice"
    assert plan_grants(engine) == [1000]
    assert balance(engine, "alice").plan == "pro"


@pytest.mark.parametrize(
    "forge",
    ["tampered body", "wrong secret", "missing header", "stale", "future", "garbled header"],
)
def test_forged_or_stale_deliveries_change_nothing(engine, alice, synced, config, forge):
    evt = paid_invoice_event()
    body, header = signed(evt)
    if forge == "tampered body":
        body = body.replace(b'"paid"', b'"PAID"', 1)
    elif forge == "wrong secret":
        body, header = signed(evt, secret="whsec_somebody_else")
    elif forge == "missing header":
        header = None
    elif forge == "stale":
        body, header = signed(evt, timestamp=int(time.time()) - 301)
    elif forge == "future":
        body, header = signed(evt, timestamp=int(time.time()) + 301)
    else:
        header = "v1=deadbeef"
    before = snapshot(engine)
    with pytest.raises(InvalidSignature) as refused:
        receive(engine, body, header, config)
    assert SECRET not in refused.value.message and (header or "@") not in refused.value.message
    assert stored_count(engine) == 0
    assert snapshot(engine) == before


def test_the_tolerance_comes_from_config(engine, alice, synced):
    evt = paid_invoice_event()
    lenient = WebhookConfig(secrets=(SECRET,), tolerance=900)
    receipt = receive(engine, *signed(evt, timestamp=int(time.time()) - 600), lenient)
    assert receipt.outcome.status == "processed"


def test_either_secret_verifies_during_rotation(engine, alice, synced):
    rotating = WebhookConfig(secrets=(OTHER_SECRET, SECRET))
    for secret in (SECRET, OTHER_SECRET):
        receipt = receive(engine, *signed(paid_invoice_event(), secret=secret), rotating)
        assert receipt.outcome.status == "processed"
    # Stripe signs with old and new secrets at once during a roll: any matching v1 passes.
    evt = paid_invoice_event()
    body, old = signed(evt, secret="whsec_retired")
    _, new = signed(evt, secret=SECRET)
    both = f"{old},v1={new.split('v1=')[1]}"
    assert receive(engine, body, both, WebhookConfig(secrets=(SECRET,))).new


def test_a_signed_body_that_is_not_an_event_is_refused(engine, config):
    body, header = signed(b'{"hello": "world"}')
    with pytest.raises(InvalidEvent):
        receive(engine, body, header, config)
    assert stored_count(engine) == 0


def test_a_repeat_delivery_is_processed_once(engine, alice, synced, config):
    evt = paid_invoice_event()
    first = receive(engine, *signed(evt), config)
    second = receive(engine, *signed(evt), config)
    assert first.new and not second.new
    assert second.outcome.status == "processed" and not second.outcome.ran
    assert plan_grants(engine) == [1000]
    assert show_event(engine, evt["id"])["attempts"] == 1


def test_concurrent_duplicate_deliveries_are_processed_once(engine, alice, synced, config):
    evt = paid_invoice_event()
    deliveries = [signed(evt) for _ in range(3)]
    outcomes, errors = [], []
    gate = threading.Barrier(len(deliveries))

    def deliver(body: bytes, header: str) -> None:
        try:
            gate.wait()
            outcomes.append(receive(engine, body, header, config))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=d) for d in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(o.new for o in outcomes) == [False, False, True]
    assert [o.outcome.status for o in outcomes] == ["processed"] * 3
    assert sum(o.outcome.ran for o in outcomes) == 1
    assert plan_grants(engine) == [1000]
    assert show_event(engine, evt["id"])["attempts"] == 1
    assert audit_verify(engine)["ok"]


def test_unknown_event_types_are_stored_as_ignored(engine, config):
    evt = event("charge.refunded", {"id": "ch_1", "object": "charge"}, created=now_utc())
    receipt = receive(engine, *signed(evt), config)
    assert receipt.outcome.status == "ignored"
    [row] = list_events(engine, status="ignored")
    assert row["ignored_reason"] == "no handler for event type charge.refunded"


def test_unmappable_events_wait_with_the_reason_not_guessed(engine, alice, synced, config):
    nobody = paid_invoice_event(user_id=None)
    nobody["data"]["object"]["customer_email"] = "alice@example.com"
    receipt = receive(engine, *signed(nobody), config)
    assert receipt.outcome.status == "unmapped"
    assert "maps to no user" in receipt.outcome.detail
    [row] = list_events(engine, status="unmapped")
    assert row["waiting_for"] == nobody["data"]["object"]["customer"]
    unknown_price = paid_invoice_event()
    unknown_price["data"]["object"]["lines"]["data"][0]["pricing"]["price_details"]["price"] = (
        "price_made_elsewhere"
    )
    receipt = receive(engine, *signed(unknown_price), config)
    assert receipt.outcome.status == "deferred"
    assert "price_made_elsewhere" in receipt.outcome.detail and "no plan" in receipt.outcome.detail
    assert plan_grants(engine) == []


def test_a_failing_handler_rolls_back_and_is_recorded(engine, alice, synced):
    """Stripe unreachable while fetching the latest invoice: the event is stored as failed."""
    broken = WebhookConfig(
        secrets=(SECRET,), fetch_latest=True, gateway=gateway("http://127.0.0.1:9")
    )
    evt = paid_invoice_event()
    before = snapshot(engine)
    receipt = receive(engine, *signed(evt), broken)
    assert receipt.outcome.status == "failed"
    assert snapshot(engine) == before
    [row] = list_events(engine, status="failed")
    assert row["id"] == evt["id"] and row["attempts"] == 1
    assert "could not reach Stripe" in row["last_error"]
    assert "SECRET" not in row["last_error"]
