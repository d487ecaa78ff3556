"""Daemon replicas as real processes, and the faults done to them: SIGKILL and dropped backends.

Every replica is a `creditctl daemon --no-scheduler` subprocess on its own loopback port,
all on one database. A killed replica is started again on a new port (as a supervisor
would) while the others keep receiving deliveries. On PostgreSQL, `terminate_backends`
ends the replicas' server connections (application_name 'creditctl') of this database only.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from helpers import cli_env, creditctl_executable
from servers import free_port, wait_for
from webhook_helpers import SECRET, signed

POST_TIMEOUT = 40  # above SQLite's 30 s busy timeout: a slow answer is not a lost one


class Replica:
    """One `creditctl daemon` process; `post` answers a status code, or None if none came."""

    def __init__(self, database_url: str, cwd: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"daemon-{self.port}.log"
        environment = cli_env(database_url, cwd, {"STRIPE_WEBHOOK_SECRET": SECRET, **env})
        command = [creditctl_executable(), "daemon", "--host", "127.0.0.1"]
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port), "--no-scheduler"],
                cwd=cwd,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        wait_for(f"{self.url}/healthz", self.process, self.log, timeout=60)

    def post(self, evt: dict) -> int | None:
        body, header = signed(evt)
        request = urllib.request.Request(
            f"{self.url}/webhooks/stripe",
            data=body,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=POST_TIMEOUT) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as error:  # a non-2xx answer: its body does not matter
            return error.code
        except (OSError, http.client.HTTPException):  # refused, reset, cut short: no answer
            return None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


class Cluster:
    """`count` replicas on one database; `kill` restarts the victim on a new port."""

    def __init__(self, database_url: str, cwd: Path, count: int, env: dict[str, str]) -> None:
        self.database_url, self.cwd, self.env = database_url, cwd, env
        self.lock = threading.Condition()
        self.slots: list[Replica | None] = [Replica(database_url, cwd, env) for _ in range(count)]
        self.all: list[Replica] = list(self.slots)  # type: ignore[arg-type]
        for replica in self.all:
            replica.wait_ready()
        self.kills = 0
        self.restarts: list[threading.Thread] = []

    def replica(self, slot: int, wait: float = 60) -> Replica | None:
        """The live replica in `slot`, else the next live one; waits while none is up."""
        deadline = time.monotonic() + wait
        with self.lock:
            while True:
                for offset in range(len(self.slots)):
                    found = self.slots[(slot + offset) % len(self.slots)]
                    if found is not None:
                        return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)

    def kill(self, victim: Replica) -> None:
        """SIGKILL `victim` (if still serving) and start its replacement in the background."""
        with self.lock:
            if victim not in self.slots:
                return
            slot = self.slots.index(victim)
            self.slots[slot] = None
        victim.kill()
        self.kills += 1
        thread = threading.Thread(target=self._restart, args=(slot,), daemon=True)
        self.restarts.append(thread)
        thread.start()

    def _restart(self, slot: int) -> None:
        replacement = Replica(self.database_url, self.cwd, self.env)
        with self.lock:
            self.all.append(replacement)
        replacement.wait_ready()
        with self.lock:
            self.slots[slot] = replacement
            self.lock.notify_all()

    def settle(self) -> None:
        """Until every replacement is serving."""
        for thread in list(self.restarts):
            thread.join(90)

    def close(self) -> None:
        """Kill every replica: the round's work is done, and a clean stop is tested elsewhere."""
        self.settle()
        for replica in self.all:
            if replica.process.poll() is None:
                replica.kill()

    def errors(self, limit: int = 30) -> list[str]:
        """ERROR and traceback lines from every replica's log, for a failure's report."""
        found = []
        for replica in self.all:
            for line in replica.log.read_text(errors="replace").splitlines():
                if "ERROR" in line or "Traceback" in line:
                    found.append(f"{replica.port}: {line[:300]}")
        return found[-limit:]


def terminate_backends(admin_url: str, database: str, only_one: bool) -> int:
    """pg_terminate_backend on this database's creditctl connections; how many were ended."""
    import psycopg

    query = (
        "SELECT pid FROM pg_stat_activity WHERE datname = %s "
        "AND application_name = 'creditctl' AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(admin_url, autocommit=True, application_name="creditctl_fault") as conn:
        pids = [row[0] for row in conn.execute(query, (database,)).fetchall()]
        if only_one:
            pids = pids[:1]
        return sum(
            1
            for pid in pids
            if conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        )


def wait_processed(database_url: str, event_id: str, timeout: float = 10) -> bool:
    """Poll until the stored event is processed (its transaction committed); False on timeout.

    A raw driver connection of its own, not named 'creditctl', so terminations spare it.
    """
    query = "SELECT status FROM webhook_events WHERE id = "
    if database_url.startswith("sqlite"):
        import sqlite3

        conn: Any = sqlite3.connect(database_url.split("///", 1)[1], timeout=30)
        query += "?"
    else:
        import psycopg

        url = database_url.replace("postgresql+psycopg", "postgresql")
        conn = psycopg.connect(url, autocommit=True, application_name="creditctl_fault")
        query += "%s"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            row = conn.execute(query, (event_id,)).fetchone()
            if row is not None and row[0] in ("processed", "ignored"):
                return True
            time.sleep(0.002)
        return False
    finally:
        conn.close()


def retry_job(database_url: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """`creditctl webhooks replay --failed --json`, the retry job as an operator or cron runs it."""
    return subprocess.Popen(
        [creditctl_executable(), "webhooks", "replay", "--failed", "--json"],
        cwd=cwd,
        env=cli_env(database_url, cwd, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def scheduled_retry(database_url: str, env: dict[str, str]) -> int:
    """The daemon's retry job as it runs some minutes after the deliveries stopped.

    The scheduler's own function, in this process, with the clock ten minutes ahead (two of
    its five-minute runs later), so events left pending by a dead process count as stuck.
    """
    from datetime import timedelta

    from freezegun import freeze_time

    from creditctl.clock import utcnow
    from creditctl.config.settings import load_settings
    from creditctl.db.engine import make_engine
    from creditctl.scheduler.jobs import retry_failed_webhooks
    from creditctl.webhooks.config import WebhookConfig

    settings = load_settings(environ={"STRIPE_WEBHOOK_SECRET": SECRET, **env})
    engine = make_engine(database_url)
    try:
        with freeze_time(utcnow() + timedelta(minutes=10), tick=True):
            return retry_failed_webhooks(engine, WebhookConfig.from_settings(settings))
    finally:
        engine.dispose()


def audit_verify(database_url: str, cwd: Path) -> tuple[int, str]:
    """`creditctl audit verify --json`: its exit code and what it printed."""
    result = subprocess.run(
        [creditctl_executable(), "audit", "verify", "--json"],
        cwd=cwd,
        env=cli_env(database_url, cwd),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout.strip() or result.stderr.strip()
    try:
        problems = json.loads(result.stdout).get("problems", [])
        output = json.dumps(problems)[:1500] if problems else output[:300]
    except ValueError:
        pass
    return result.returncode, output
