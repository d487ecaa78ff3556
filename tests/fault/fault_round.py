"""One seeded round: deliver a round's stories to daemon replicas under faults, then recover.

The seed draws the stories, the delivery order and copies, the replica count and every
fault: which delivery a SIGKILL or a backend termination follows and how long after, and
when a retry job runs beside the daemons. What the seed cannot fix is the operating
system's timing, so a replayed seed repeats the same schedule, not the same interleaving.

After the faults, deliveries go on as Stripe's do: each event not yet answered with a 2xx
is delivered again, to any live replica, with `creditctl webhooks replay --failed` run
between passes and once at the end.
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
from fault_cluster import Cluster, audit_verify, retry_job, terminate_backends
from fault_invariants import violations
from fault_stories import Story, round_stories
from helpers import new_user
from servers import free_port
from webhook_support import PRO_PRICE

REDELIVERY_PASSES = 5  # Stripe retries for days; a correct daemon needs one or two passes
STORIES = int(os.environ.get("CREDITCTL_FAULT_STORIES", 8))  # subscriptions per round


@dataclass
class FaultPlan:
    """Every random choice of a round, drawn from its seed before anything runs."""

    replicas: int
    senders: int
    order: str
    deliveries: list[tuple[dict[str, Any], int]]  # (event, replica slot)
    kills: dict[int, float]  # delivery index -> seconds after it is sent
    terminations: dict[int, tuple[float, bool]]  # delivery index -> (delay, only one)
    retry_jobs: set[int]
    stripe_unreachable: bool

    @classmethod
    def draw(cls, rng: random.Random, stories: list[Story], backend: str) -> FaultPlan:
        replicas = rng.choice((2, 2, 3))
        events = [evt for story in stories for evt in story.events]
        copies = [evt for evt in events for _ in range(rng.choices((1, 2, 3), (6, 3, 1))[0])]
        order = rng.choice(("shuffled", "jittered"))
        if order == "shuffled":
            rng.shuffle(copies)
        else:  # roughly in `created` order, neighbours swapped: Stripe's usual disorder
            noisy = [(c["created"] + rng.gauss(0, 12), i) for i, c in enumerate(copies)]
            copies = [copies[i] for _, i in sorted(noisy)]
        n = len(copies)
        changes = [i for i, c in enumerate(copies) if c["type"].startswith("customer.sub")]

        def point() -> int:
            # Half the faults follow a subscription event: what it releases runs after it.
            return rng.choice(changes) if changes and rng.random() < 0.5 else rng.randrange(n)

        kills = {point(): rng.uniform(0, 0.15) for _ in range(rng.choice((0, 1, 2, 3)))}
        terminations = {}
        if backend == "postgresql":
            for _ in range(rng.choice((0, 1, 2, 3))):
                terminations[point()] = (rng.uniform(0, 0.15), rng.random() < 0.5)
        return cls(
            replicas=replicas,
            senders=rng.randint(2, 4),
            order=order,
            deliveries=[(c, rng.randrange(replicas)) for c in copies],
            kills=kills,
            terminations=terminations,
            retry_jobs={rng.randrange(n) for _ in range(rng.randint(0, 2))},
            stripe_unreachable=rng.random() < 0.25,
        )

    def describe(self) -> str:
        return (
            f"{len(self.deliveries)} deliveries ({self.order}) to {self.replicas} replicas by "
            f"{self.senders} senders; {len(self.kills)} SIGKILL(s), "
            f"{len(self.terminations)} backend termination(s), {len(self.retry_jobs)} "
            f"concurrent retry job(s), Stripe "
            + ("unreachable" if self.stripe_unreachable else "not configured")
        )


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
    problems: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        verdict = "ok" if not self.problems else f"{len(self.problems)} violation(s)"
        return (
            f"fault round seed={self.seed} backend={self.backend}: {verdict} in "
            f"{self.seconds:.1f} s; {self.plan.describe()}; {self.kills} killed, "
            f"{self.terminated} backend(s) ended, retry job exits {self.jobs}, "
            f"{self.passes} redelivery pass(es); "
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
        self.timers: list[threading.Timer] = []
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
            if index in self.plan.kills:
                self._later(self.plan.kills[index], cluster.kill, replica)
            if index in self.plan.terminations:
                delay, only_one = self.plan.terminations[index]
                self._later(delay, self._terminate, only_one)
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

    def _later(self, delay: float, action: Any, *args: Any) -> None:
        def act() -> None:
            try:
                action(*args)
            except Exception as exc:  # noqa: BLE001 - reported after the phase
                self.harness_errors.append(f"{action.__name__}: {exc!r}")

        timer = threading.Timer(delay, act)
        self.timers.append(timer)
        timer.start()

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
        self.jobs.append(retry_job(self.database_url, self.cwd, self.env))
        self._finish_jobs()
