"""Worker processes for the concurrency and crash tests: `python tests/workers.py MODE ...`.

Each worker opens its own engine, waits for the go file (so all start together),
then runs its loop. Every committed operation is reported on stdout, flushed,
before the next begins: a killed worker's report is a lower bound on what it did.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

from creditctl.db.engine import make_engine
from creditctl.errors import HoldSettled, InsufficientCredits
from creditctl.ledger import fastpath, holds, spending
from creditctl.ledger.policy import Policy

POLICY = Policy()


def report(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def wait_for(go: Path) -> None:
    report("ready")
    while not go.exists():
        time.sleep(0.005)


def deducts(engine, url: str, user: str, count: int, fast: bool) -> dict[str, int]:
    """`count` deducts of 1 credit, on the fast path or the full ledger."""
    database = fastpath.Database(url, 30000, lambda: engine)
    done = {"ok": 0, "refused": 0}
    for _ in range(count):
        try:
            if fast:
                fastpath.deduct(database, user, 1, actor="worker", policy=POLICY)
            else:
                spending.deduct(engine, user, 1, actor="worker", policy=POLICY)
            done["ok"] += 1
        except InsufficientCredits:
            done["refused"] += 1
    return done


def mixed(engine, user: str, count: int, seed: int) -> dict[str, int]:
    """Random reserves, captures (whole or part), releases and deducts; some holds left open."""
    rng = random.Random(seed)
    open_holds: list[tuple[int, int]] = []
    done = {"deducted": 0, "captured": 0, "refused": 0, "left_open": 0}
    for _ in range(count):
        choice = rng.random()
        try:
            if choice < 0.35 or not open_holds:
                amount = rng.randint(1, 3)
                if rng.random() < 0.5:
                    spending.deduct(engine, user, amount, actor="worker", policy=POLICY)
                    done["deducted"] += amount
                else:
                    hold = holds.reserve(
                        engine,
                        user,
                        amount,
                        ttl=timedelta(minutes=10),
                        actor="worker",
                        policy=POLICY,
                    )
                    open_holds.append((hold.hold_id, amount))
            elif choice < 0.75:
                hold_id, amount = open_holds.pop(rng.randrange(len(open_holds)))
                spend = rng.randint(1, amount)
                holds.capture(engine, hold_id, spend, actor="worker")
                done["captured"] += spend
            else:
                hold_id, _ = open_holds.pop(rng.randrange(len(open_holds)))
                holds.release(engine, hold_id, actor="worker")
        except InsufficientCredits:
            done["refused"] += 1
        except HoldSettled as exc:
            raise AssertionError("a hold only this worker knows was settled by another") from exc
    done["left_open"] = len(open_holds)
    return done


def keyed(engine, url: str, user: str, key: str, fast: bool) -> dict[str, object]:
    """One deduct with a key every worker shares: only the first may write."""
    if fast:
        posting = fastpath.deduct(
            fastpath.Database(url, 30000, lambda: engine),
            user,
            5,
            actor="worker",
            policy=POLICY,
            ref="r",
            key=key,
        )
    else:
        posting = spending.deduct(engine, user, 5, actor="worker", policy=POLICY, ref="r", key=key)
    return {"entry_id": posting.entry_id, "replayed": posting.replayed}


def burst(engine, user: str) -> None:
    """Deduct and reserve until killed, reporting each commit."""
    rng = random.Random()
    while True:
        try:
            if rng.random() < 0.5:
                spending.deduct(engine, user, 1, actor="worker", policy=POLICY)
                report("deducted", 1)
            else:
                hold = holds.reserve(
                    engine, user, 2, ttl=timedelta(minutes=1), actor="worker", policy=POLICY
                )
                report("reserved", hold.hold_id)
                if rng.random() < 0.5:
                    holds.capture(engine, hold.hold_id, 1, actor="worker")
                    report("captured", hold.hold_id)
        except InsufficientCredits:
            report("refused")


def churn(engine, user: str) -> None:
    """Deduct, reserve, release and capture until killed, keeping a few holds open."""
    rng = random.Random()
    open_holds: list[int] = []
    while True:
        choice = rng.random()
        try:
            if choice < 0.3:
                spending.deduct(engine, user, 1, actor="worker", policy=POLICY)
                report("deducted", 1)
            elif choice < 0.7 or not open_holds:
                hold = holds.reserve(
                    engine, user, 2, ttl=timedelta(minutes=10), actor="worker", policy=POLICY
                )
                open_holds.append(hold.hold_id)
                report("reserved", hold.hold_id)
            elif choice < 0.85:
                holds.release(engine, open_holds.pop(rng.randrange(len(open_holds))), actor="w")
                report("released")
            else:
                holds.capture(engine, open_holds.pop(rng.randrange(len(open_holds))), actor="w")
                report("captured")
        except InsufficientCredits:
            report("refused")
        if len(open_holds) > 5:
            holds.release(engine, open_holds.pop(0), actor="worker")
            report("released")


def main() -> None:
    mode, url, user, go = sys.argv[1:5]
    engine = make_engine(url)
    wait_for(Path(go))
    if mode == "deduct":
        result = deducts(engine, url, user, int(sys.argv[5]), fast=sys.argv[6] == "fast")
    elif mode == "keyed":
        result = keyed(engine, url, user, sys.argv[5], fast=sys.argv[6] == "fast")
    elif mode == "mixed":
        result = mixed(engine, user, int(sys.argv[5]), seed=int(sys.argv[6]))
    elif mode == "churn":
        churn(engine, user)
        return
    else:
        burst(engine, user)
        return
    report("result", json.dumps(result))


if __name__ == "__main__":
    main()
