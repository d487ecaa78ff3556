"""Stripe on loopback: localstripe for the subscription lifecycle, a recorded server for the rest.

localstripe runs once per session on a free port as a subprocess; its data is flushed
before each test. The recorded-response server is fresh per test.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from recorded_stripe import API_KEY, RecordedStripe

LOCALSTRIPE_KEY = "sk_test_localstripe_0123456789SECRET"


@pytest.fixture
def localstripe(localstripe_server) -> str:
    """The session's localstripe, emptied for this test."""
    request = urllib.request.Request(f"{localstripe_server}/_config/data", method="DELETE")
    with urllib.request.urlopen(request, timeout=5):
        pass
    return localstripe_server


@pytest.fixture
def localstripe_client(localstripe):
    """An SDK client for the test's own setup and checks, as Stripe's side would act."""
    import stripe

    return stripe.StripeClient(LOCALSTRIPE_KEY, base_addresses={"api": localstripe})


@pytest.fixture
def localstripe_env(localstripe) -> dict[str, str]:
    return {"STRIPE_API_KEY": LOCALSTRIPE_KEY, "STRIPE_API_BASE": localstripe}


@pytest.fixture
def recorded() -> Iterator[RecordedStripe]:
    server = RecordedStripe().start()
    yield server
    server.stop()


@pytest.fixture
def recorded_env(recorded) -> dict[str, str]:
    return {"STRIPE_API_KEY": API_KEY, "STRIPE_API_BASE": recorded.url}
