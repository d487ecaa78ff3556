"""The account view is one consistent snapshot while other processes write, on both databases."""

from __future__ import annotations

import signal
import threading

import pytest
from helpers import new_user, start_workers

from creditctl.ledger import corrections
from creditctl.ledger.audit import verify
from creditctl.support.account_view import account_view

pytestmark = pytest.mark.slow
WRITERS = 3
VIEWS = 40  # at least; and at least WRITES committed while they were taken
WRITES = 150


class Counter:
    """Counts the operations workers report, reading their output so they never block on it."""

    def __init__(self, procs) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._drain, args=(p,)) for p in procs]
        for thread in self.threads:
            thread.start()

    def _drain(self, proc) -> None:
        for _line in proc.stdout:
            with self.lock:
                self.count += 1

    def now(self) -> int:
        with self.lock:
            return self.count


def test_every_view_taken_during_a_burst_adds_up(engine, database_url, policy, tmp_path):
    new_user(engine, policy, "u1")
    corrections.grant(engine, "u1", 100_000, actor="tester", reason="room for the burst")
    go = tmp_path / "go"
    procs = start_workers([["churn", database_url, "u1", str(go)] for _ in range(WRITERS)], go)
    counter = Counter(procs)
    torn, views = [], 0
    try:
        first = counter.now()
        while views < VIEWS or counter.now() - first < WRITES:
            assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs]
            view = account_view(engine, "u1", policy=policy)
            views += 1
            shown, listed = view["balance"], sum(h["amount"] for h in view["holds"])
            if (
                shown["plan_credits"] + shown["bonus_credits"] != shown["available"]
                or shown["held"] != listed
            ):
                torn.append((shown, listed))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=60)
        for thread in counter.threads:
            thread.join(timeout=60)
        for proc in procs:
            proc.stdout.close()
            proc.stderr.close()
    assert torn == [], f"{len(torn)} of {views} views were torn, e.g. {torn[0]}"
    assert verify(engine)["ok"]
