"""Fixtures for the webhook tests: a user, a synced price, a stub Stripe, localstripe, the daemon.

Everything talks over loopback: the daemon is a real `creditctl daemon` subprocess, Stripe is
localstripe (a subprocess) or a small stub server answering GETs from canned objects.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))

from webhook_helpers import SECRET
from webhook_support import (
    LOCALSTRIPE_KEY,
    PRO_PRICE,
    Daemon,
    register_webhook,
)

from creditctl.webhooks.config import WebhookConfig


@pytest.fixture
def config() -> WebhookConfig:
    return WebhookConfig(secrets=(SECRET,))


@pytest.fixture
def alice(engine, policy) -> str:
    from helpers import new_user

    new_user(engine, policy, "alice")
    return "alice"


@pytest.fixture
def synced(engine) -> str:
    """The pro plan's price id, as `plans sync` records it."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE plans SET stripe_price_id = :p WHERE name = 'pro'"), {"p": PRO_PRICE}
        )
    return PRO_PRICE


class StubStripe:
    """Answers GET /v1/<kind>/<id> from `objects`; anything else is 404."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.requests.append(self.path)
                found = stub.objects.get(self.path.split("?")[0].rsplit("/", 1)[-1])
                body = json.dumps(
                    found
                    or {"error": {"type": "invalid_request_error", "message": "No such object"}}
                ).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_stripe() -> Iterator[StubStripe]:
    server = StubStripe()
    yield server
    server.stop()


@pytest.fixture
def localstripe(localstripe_server) -> Iterator[str]:
    """The session's localstripe, emptied, with no webhook endpoint left registered."""
    request = urllib.request.Request(f"{localstripe_server}/_config/data", method="DELETE")
    urllib.request.urlopen(request, timeout=5).close()
    yield localstripe_server
    register_webhook(localstripe_server, "creditctl", "http://127.0.0.1:9/", events=[])


@pytest.fixture
def localstripe_client(localstripe) -> Any:
    import stripe

    return stripe.StripeClient(LOCALSTRIPE_KEY, base_addresses={"api": localstripe})


@pytest.fixture
def daemon(database_url, tmp_path) -> Iterator[Daemon]:
    running = Daemon(database_url, tmp_path)
    yield running
    running.stop()
