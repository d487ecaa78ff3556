"""Webhook test support importable by name (test modules must not import `conftest`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from servers import free_port, wait_for
from webhook_helpers import SECRET

PRO_PRICE = "price_pro_synced"


LOCALSTRIPE_KEY = "sk_test_localstripe_webhooks_SECRET"


def gateway(api_base: str) -> Any:
    from creditctl.billing.gateway import Gateway

    return Gateway(
        api_key="sk_test_stub_SECRET", api_version="2026-10-28.endive", api_base=api_base
    )


def register_webhook(localstripe_url: str, endpoint_id: str, url: str, events: list[str]) -> None:
    body = json.dumps({"url": url, "secret": SECRET, "events": events}).encode()
    request = urllib.request.Request(
        f"{localstripe_url}/_config/webhooks/{endpoint_id}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()


class Daemon:
    """A `creditctl daemon` subprocess on a free loopback port."""

    def __init__(self, database_url: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        from helpers import cli_env, creditctl_executable

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"daemon-{self.port}.log"
        environment = cli_env(database_url, cwd, {"STRIPE_WEBHOOK_SECRET": SECRET, **(env or {})})
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    creditctl_executable(),
                    "daemon",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-scheduler",
                ],
                cwd=cwd,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_for(f"{self.url}/healthz", self.process, self.log)

    def post(self, body: bytes, header: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers["Stripe-Signature"] = header
        request = urllib.request.Request(
            f"{self.url}/webhooks/stripe", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=40)

    def output(self) -> str:
        return self.log.read_text()


def environment_without_stripe() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "CREDITCTL_"))}
