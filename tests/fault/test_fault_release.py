"""A crash just after a subscription event commits strands no invoice that waited for it.

An invoice.paid for a price known only by id waits for its subscription; recording the
subscription releases it. Each trial delivers such an invoice first, then the subscription
event, and strikes a few ms after that event is seen committed: SIGKILL of the replica
that handled it, or (PostgreSQL) termination of the replicas' backends. Then, as Stripe
does, every event is delivered again until it gets a 2xx, `webhooks replay --failed` runs,
and the scheduler's retry job runs as it would minutes later; the paid period must be
granted exactly once and `audit verify` stay clean.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

import pytest
from fault_cluster import (
    Cluster,
    audit_verify,
    retry_job,
    scheduled_retry,
    terminate_backends,
    wait_processed,
)
from fault_databases import pg_admin_url
from fault_invariants import stored_events, story_violations
from fault_seeds import replay_hint, seeds
from fault_stories import Story, tell
from helpers import new_user

from creditctl.db.engine import make_engine

pytestmark = [pytest.mark.fault, pytest.mark.slow]

TRIALS = 4  # per seed: on the code before issue 9's fix, a third to a half stranded theirs
REDELIVERIES = 5


class Answers:
    def __init__(self) -> None:
        self.acked: set[str] = set()

    def record(self, event_id: str, status: int | None) -> None:
        if status is not None and 200 <= status < 300:
            self.acked.add(event_id)


def strike_after_commit(rng, cluster, backend, database_url, story: Story, answers) -> str:
    """Deliver the invoices, then the subscription event, and strike once it commits."""
    change = next(e for e in story.events if e["type"].startswith("customer.subscription."))
    replica = cluster.replica(0)
    for evt in story.events:
        if evt["type"].startswith("invoice."):
            answers.record(evt["id"], replica.post(evt))
    action = "kill" if backend == "sqlite" or rng.random() < 0.5 else "terminate"
    delay = rng.uniform(0, 0.015)

    def strike() -> None:
        wait_processed(database_url, change["id"])
        time.sleep(delay)
        if action == "kill":
            cluster.kill(replica)
        else:
            terminate_backends(pg_admin_url(), database_url.rsplit("/", 1)[1], only_one=False)

    striker = threading.Thread(target=strike)
    striker.start()
    answers.record(change["id"], replica.post(change))
    striker.join()
    return f"{action} {delay * 1000:.0f} ms after {change['id']} committed"


def redeliver(cluster, story: Story, answers, database_url, cwd) -> None:
    """Stripe's redelivery until every event has a 2xx, then the retry job."""
    cluster.settle()
    for _ in range(REDELIVERIES):
        missing = [e for e in story.events if e["id"] not in answers.acked]
        if not missing:
            break
        for evt in missing:
            answers.record(evt["id"], cluster.replica(1).post(evt))
    job = retry_job(database_url, cwd, {})
    job.communicate(timeout=120)
    scheduled_retry(database_url, {})


def test_a_crash_after_a_releasing_commit_strands_no_invoice(
    backend, database_url, policy, tmp_path
):
    cluster = Cluster(database_url, tmp_path, 2, {})
    problems = []
    try:
        for seed in seeds(1):
            rng = random.Random(seed)
            for trial in range(TRIALS):
                now = datetime.now(UTC).replace(microsecond=0)
                story = tell(rng, f"{seed % 100000:05d}r{trial}", "paid", now, "basil", "dashboard")
                engine = make_engine(database_url)  # its own: terminations spare no 'creditctl'
                new_user(engine, policy, story.user_id)
                engine.dispose()
                answers = Answers()
                what = strike_after_commit(rng, cluster, backend, database_url, story, answers)
                redeliver(cluster, story, answers, database_url, tmp_path)
                engine = make_engine(database_url)
                with engine.connect() as conn:
                    wrong = story_violations(conn, story, answers.acked.__contains__)
                    if wrong:
                        wrong += stored_events(conn, story)
                engine.dispose()
                verdict = "; ".join(wrong) or "ok"
                print(f"fault release seed={seed} trial={trial} {backend}: {what}: {verdict}")
                if wrong:
                    problems.append(f"{replay_hint(seed, 'releasing', backend)}: {what}: {verdict}")
    finally:
        cluster.close()
    code, output = audit_verify(database_url, tmp_path)
    if code != 0:
        problems.append(f"creditctl audit verify exited {code}: {output}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
