"""Webhook answer latency: signed deliveries to a real `creditctl daemon` on loopback.

Each delivery is a new `invoice.paid` for its own user and subscription (verified, stored,
processed: a plan grant), then the same events again (repeat deliveries). Prints p50/p99/max
per backend. Target: p99 under 100 ms for a stored event. Run: python -m bench.webhooks
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

PG_ADMIN = os.environ.get("CREDITCTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "whsec_bench_0123456789"
EVENTS = int(os.environ.get("CREDITCTL_BENCH_WEBHOOKS", "300"))
PRICE = "price_bench_pro"


def _prepare(url: str, users: int) -> None:
    import sqlalchemy as sa

    from creditctl.accounts.plans import load_plans
    from creditctl.config.settings import load_settings
    from creditctl.db.engine import make_engine
    from creditctl.db.migrate import upgrade
    from creditctl.db.tables import users as users_table
    from creditctl.ledger.transactions import run_write

    engine = make_engine(url)
    upgrade(engine)
    load_plans(engine, load_settings(environ={}).plans)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE plans SET stripe_price_id = :p WHERE name = 'pro'"), {"p": PRICE}
        )

    def add(conn) -> None:
        from creditctl.clock import utcnow

        conn.execute(
            users_table.insert(),
            [
                {
                    "id": f"u{i}",
                    "email": f"u{i}@example.com",
                    "email_key": f"u{i}@example.com",
                    "plan": "free",
                    "created_at": utcnow(),
                }
                for i in range(users)
            ],
        )

    run_write(engine, add)
    engine.dispose()


def _event(i: int) -> bytes:
    now = int(time.time())
    invoice = {
        "id": f"in_bench_{i}",
        "object": "invoice",
        "customer": f"cus_bench_{i}",
        "status": "paid",
        "billing_reason": "subscription_create",
        "parent": {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": f"sub_bench_{i}",
                "metadata": {"creditctl_user_id": f"u{i}"},
            },
        },
        "lines": {
            "data": [
                {
                    "id": f"il_{i}",
                    "period": {"start": now - 60, "end": now + 2592000},
                    "parent": {
                        "type": "subscription_item_details",
                        "subscription_item_details": {"proration": False},
                    },
                    "pricing": {"price_details": {"price": PRICE}},
                }
            ]
        },
    }
    return json.dumps(
        {
            "id": f"evt_bench_{uuid.uuid4().hex[:12]}",
            "object": "event",
            "type": "invoice.paid",
            "created": now,
            "api_version": "2026-10-28.endive",
            "data": {"object": invoice},
        },
        indent=2,
    ).encode()


def _get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def _post(url: str, body: bytes) -> float:
    import stripe

    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET)
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        assert response.status == 200
    return (time.perf_counter() - started) * 1000


def _daemon(url: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CREDITCTL_", "STRIPE_"))},
        "CREDITCTL_DATABASE_URL": url,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "CREDITCTL_ENV_FILE": str(workdir / "no.env"),
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("creditctl")),
            "daemon",
            "--port",
            str(port),
            "--no-scheduler",
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
            return process, f"{base}/webhooks/stripe"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the daemon did not start")


def measure(url: str, workdir: Path) -> dict[str, list[float]]:
    _prepare(url, EVENTS)
    process, endpoint = _daemon(url, workdir)
    try:
        bodies = [_event(i) for i in range(EVENTS)]
        for body in bodies[:5]:
            _post(endpoint, body)  # warm-up (also counted as repeats below)
        new = [_post(endpoint, body) for body in bodies[5:]]
        repeat = [_post(endpoint, body) for body in bodies]
        health = endpoint.replace("/webhooks/stripe", "/healthz")
        floor = [_get(health) for _ in bodies]
    finally:
        process.terminate()
        process.wait(timeout=40)
    return {
        "new event (verify, store, process)": new,
        "repeat delivery": repeat,
        "floor: GET /healthz on the same daemon (one DB round trip)": floor,
    }


def _summary(name: str, backend: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return (
        f"| {backend} | {name} | {len(values)} | {statistics.median(values):.1f} | "
        f"{p99:.1f} | {ordered[-1]:.1f} |"
    )


def _pg_url() -> str | None:
    try:
        import psycopg

        name = f"creditctl_bench_wh_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    except Exception:  # noqa: BLE001 - no server: SQLite only
        return None


def table() -> str:
    """Latency per backend as a Markdown table (target: p99 < 100 ms for a new event)."""
    lines = ["| backend | delivery | n | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backends = [("sqlite", f"sqlite:///{work / 'bench.db'}")]
        pg = _pg_url()
        if pg:
            backends.append(("postgresql", pg))
        for backend, url in backends:
            for name, values in measure(url, work).items():
                lines.append(_summary(name, backend, values))
        if pg:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{pg.rsplit("/", 1)[1]}" WITH (FORCE)')
    return "\n".join(lines)


def main() -> None:
    print(table())


if __name__ == "__main__":
    main()
