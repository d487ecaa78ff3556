"""The tests' localstripe keeps its state in its run's folder, not in /tmp/localstripe.pickle."""

from __future__ import annotations

from pathlib import Path

import stripe
from servers import localstripe

KEY = "sk_test_localstripe_state"
SHARED_STATE = Path("/tmp/localstripe.pickle")


def test_localstripe_state_stays_in_the_run_folder(tmp_path):
    before = SHARED_STATE.stat().st_mtime_ns if SHARED_STATE.exists() else None
    with localstripe(tmp_path) as url:
        client = stripe.StripeClient(KEY, base_addresses={"api": url})
        customer = client.v1.customers.create(params={"email": "state@example.com"})
    assert (tmp_path / "localstripe.pickle").stat().st_size > 0
    assert customer.id in (tmp_path / "localstripe.pickle").read_bytes().decode("latin-1")
    after = SHARED_STATE.stat().st_mtime_ns if SHARED_STATE.exists() else None
    assert after == before, "localstripe wrote /tmp/localstripe.pickle"
