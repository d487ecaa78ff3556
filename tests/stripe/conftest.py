"""Stripe on loopback: localstripe for the subscription lifecycle, a recorded server for the rest.

localstripe runs once per session on a free port as a subprocess; its data is flushed
before each test. The recorded-response server is fresh per test.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from recorded_stripe import API_KEY, RecordedStripe

LOCALSTRIPE_KEY = "sk_test_localstripe_0123456789SECRET"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    request = urllib.request.Request(f"{url}/v1/customers",
                                     headers={"Authorization": f"Bearer {LOCALSTRIPE_KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory) -> Iterator[str]:
    """`localstripe --port N` as a subprocess for the whole session; yields its URL."""
    port = _free_port()
    log = Path(tmp_path_factory.mktemp("localstripe")) / "localstripe.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
            stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


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
