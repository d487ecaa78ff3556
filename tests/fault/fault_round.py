"""One seeded round: deliver a round's stories to daemon replicas under faults, then recover.

The seed draws the stories, the delivery order and copies, the replica count and every
fault: which delivery a SIGKILL or a backend termination follows and how long after, and
when a retry job runs beside the daemons. What the seed cannot fix is the operating
system's timing, so a replayed seed repeats the same schedule, not the same interleaving.

After the faults, deliveries go on as Stripe's do: each event not yet answered with a 2xx
is delivered again, to any live replica, with `creditctl webhooks replay --failed` run
between some passes; at the end the scheduler's retry job runs as it would minutes later.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fault_cluster import (
    Cluster,
    Replica,
    audit_verify,
    retry_job,
    scheduled_retry,
    terminate_backends,
    wait_processed,
)
from fault_invariants import violations
from fault_plan import Fault, FaultPlan
from fault_stories import Story, round_stories
from helpers import new_user
from servers import free_port
from webhook_support import PRO_PRICE

REDELIVERY_PASSES = 5  # Stripe retries for days; a correct daemon needs one or two passes
STORIES = int(os.environ.get("CREDITCTL_FAULT_STORIES", 8))  # subscriptions per round


@dataclass
class Book:
    """What every delivery was answered: a status code, or None for no answer."""

    answers: dict[str, list[int | None]] = field(default_factory=dict)
    order: list[tuple[str, int | None]] = field(default_factory=list)  # as answered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, evt: dict[str, Any], status: int | None) -> None:
        with self.lock:
            self.answers.setdefault(evt["id"], []).append(status)
            self.order.append((evt["id"], status))

    def answered(self, story: Story) -> str:
        """The story's deliveries in the order their answers came: `2:200 1:- 3:500`."""
        ids = {evt["id"]: str(n) for n, evt in enumerate(story.events, 1)}
        return " ".join(f"{ids[i]}:{s or '-'}" for i, s in self.order if i in ids)

    def acked(self, event_id: str) -> bool:
        return any(s is not None and 200 <= s < 300 for s in self.answers.get(event_id, []))


@dataclass
class RoundResult:
    seed: int
    backend: str
    plan: FaultPlan
    stories: list[Story]
    seconds: float = 0.0
    passes: int = 0
    kills: int = 0
    terminated: int = 0
    jobs: list[int] = field(default_factory=list)
    later: int = 0  # events the scheduled retry job, run minutes later, made pass
    problems: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        verdict = "ok" if not self.problems else f"{len(self.problems)} violation(s)"
        return (
            f"fault round seed={self.seed} backend={self.backend}: {verdict} in "
            f"{self.seconds:.1f} s; {self.plan.describe()}; {self.kills} killed, "
            f"{self.terminated} backend(s) ended, retry job exits {self.jobs}, "
            f"{self.passes} redelivery pass(es), {self.later} passed the later retry job; "
            + ", ".join(f"{name} {took:.1f} s" for name, took in self.phases.items())
        )


class Round:
    def __init__(self, seed: int, database_url: str, backend: str, cwd: Path, policy: Any):
        self.seed, self.database_url, self.backend, self.cwd = seed, database_url, backend, cwd
        self.rng = random.Random(seed)
        now = datetime.now(UTC).replace(microsecond=0)
        self.stories = round_stories(self.rng, f"{seed % 100000:05d}x", STORIES, now)
        self.plan = FaultPlan.draw(self.rng, self.stories, backend)
        self.result = RoundResult(seed, backend, self.plan, self.stories)
        self.book = Book()
        self.env: dict[str, str] = {}
        if self.plan.stripe_unreachable:  # a key, and nothing listening where Stripe should be
            self.env = {
                "STRIPE_API_KEY": "sk_test_fault_unreachable",
                "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",
            }
        self._prepare(policy)
        self.timers: list[threading.Thread] = []
        self.jobs: list[Any] = []
        self.harness_errors: list[str] = []
        self.lapped = time.monotonic()

    def _prepare(self, policy: Any) -> None:
        from creditctl.db.engine import make_engine

        engine = make_engine(self.database_url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE plans SET stripe_price_id = :p WHERE name = 'pro'"),
                    {"p": PRO_PRICE},
                )
            for story in self.stories:
                new_user(engine, policy, story.user_id)
        finally:
            engine.dispose()

    def run(self) -> RoundResult:
        started = time.monotonic()
        self.cwd.mkdir(parents=True, exist_ok=True)
        cluster = Cluster(self.database_url, self.cwd, self.plan.replicas, self.env)
        self._lap("start")
        try:
            self._faulty_deliveries(cluster)
            self._lap("faults")
            self._recover(cluster)
            self._lap("recovery")
        finally:
            cluster.close()
            self._lap("stop")
        self.result.kills = cluster.kills
        problems, details = violations(self.database_url, self.stories, self.book)
        code, output = audit_verify(self.database_url, self.cwd)
        if code != 0:
            problems.append(f"creditctl audit verify exited {code}: {output}")
        if problems:
            details += [f"daemon log: {line}" for line in cluster.errors()]
        self.result.problems, self.result.details = problems, details
        self._lap("checks")
        self.result.seconds = time.monotonic() - started
        return self.result

    def _lap(self, phase: str) -> None:
        now = time.monotonic()
        self.result.phases[phase] = now - self.lapped
        self.lapped = now

    def _faulty_deliveries(self, cluster: Cluster) -> None:
        def deliver(index: int, evt: dict[str, Any], slot: int) -> None:
            replica = cluster.replica(slot)
            if replica is None:
                self.book.record(evt, None)
                return
            for fault in self.plan.faults.get(index, ()):
                self._strike(fault, cluster, replica, evt["id"])
            if index in self.plan.retry_jobs:
                self.jobs.append(retry_job(self.database_url, self.cwd, self.env))
            self.book.record(evt, replica.post(evt))

        with ThreadPoolExecutor(self.plan.senders) as pool:
            sent = [pool.submit(deliver, i, *d) for i, d in enumerate(self.plan.deliveries)]
        for future in sent:
            future.result()  # a harness error surfaces here, not as a silent missing delivery
        for timer in self.timers:
            timer.join()
        self._finish_jobs()
        assert not self.harness_errors, self.harness_errors

    def _strike(self, fault: Fault, cluster: Cluster, replica: Replica, event_id: str) -> None:
        """Run `fault` in a thread of its own, timed from the send or from the commit."""

        def act() -> None:
            try:
                if fault.after == "committed":
                    wait_processed(self.database_url, event_id)
                time.sleep(fault.delay)
                if fault.action == "kill":
                    cluster.kill(replica)
                else:
                    self._terminate(fault.only_one)
            except Exception as exc:  # noqa: BLE001 - reported after the phase
                self.harness_errors.append(f"{fault.describe()}: {exc!r}")

        thread = threading.Thread(target=act, daemon=True)
        self.timers.append(thread)
        thread.start()

    def _terminate(self, only_one: bool) -> None:
        from fault_databases import pg_admin_url

        database = self.database_url.rsplit("/", 1)[1]
        self.result.terminated += terminate_backends(pg_admin_url(), database, only_one)

    def _finish_jobs(self) -> None:
        for job in self.jobs:
            job.communicate(timeout=180)
            self.result.jobs.append(job.returncode)
        self.jobs = []

    def _redeliver(self, cluster: Cluster, evt: dict[str, Any], slot: int) -> None:
        replica = cluster.replica(slot)
        self.book.record(evt, replica.post(evt) if replica is not None else None)

    def _recover(self, cluster: Cluster) -> None:
        cluster.settle()
        events = [evt for story in self.stories for evt in story.events]
        for _ in range(REDELIVERY_PASSES):
            missing = [evt for evt in events if not self.book.acked(evt["id"])]
            if not missing:
                break
            self.result.passes += 1
            self.rng.shuffle(missing)
            again = [(evt, self.rng.randrange(self.plan.replicas)) for evt in missing]
            with ThreadPoolExecutor(self.plan.senders) as pool:
                sent = [pool.submit(self._redeliver, cluster, *d) for d in again]
            for future in sent:
                future.result()
            if self.rng.random() < 0.5:
                self.jobs.append(retry_job(self.database_url, self.cwd, self.env))
                self._finish_jobs()
        self.result.later = scheduled_retry(self.database_url, self.env)
