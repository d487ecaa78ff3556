"""Duplicates of one keyed request arriving at once: one is done, the others replay it."""

import threading
from datetime import timedelta

import pytest

from creditctl.accounts.users import add_user
from creditctl.ledger.audit import verify
from creditctl.ledger.balances import balance
from creditctl.ledger.corrections import adjust
from creditctl.ledger.holds import capture, release, reserve
from creditctl.ledger.spending import deduct

COPIES = 4


def _at_once(call):
    """Run `call` in COPIES threads released together; returns results or exceptions."""
    barrier, results = threading.Barrier(COPIES), []

    def worker():
        barrier.wait()
        try:
            results.append(call())
        except Exception as exc:  # noqa: BLE001 - the test inspects what each copy got
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(COPIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture
def user(engine, policy):
    add_user(engine, "race@example.com", user_id="r1", actor="t", policy=policy, plan="free")
    return "r1"


def _one_result(results):
    failures = [r for r in results if isinstance(r, Exception)]
    assert failures == []
    ids = {getattr(r, "entry_id", None) for r in results}
    assert len(ids) == 1
    assert sum(1 for r in results if not r.replayed) == 1


@pytest.mark.parametrize("operation", ["deduct", "adjust", "reserve"])
def test_duplicates_of_a_spend_of_everything_replay(engine, policy, user, operation):
    calls = {
        "deduct": lambda: deduct(engine, user, 105, actor="t", policy=policy, key="k"),
        "adjust": lambda: adjust(engine, user, -105, actor="t", reason="r", policy=policy, key="k"),
        "reserve": lambda: reserve(
            engine, user, 105, ttl=timedelta(minutes=5), actor="t", policy=policy, key="k"
        ),
    }
    _one_result(_at_once(calls[operation]))
    assert balance(engine, user).available == 0
    assert verify(engine)["ok"]


@pytest.mark.parametrize("settle", [capture, release])
def test_duplicates_of_a_hold_settlement_replay(engine, policy, user, settle):
    hold = reserve(engine, user, 10, ttl=timedelta(minutes=5), actor="t", policy=policy)
    _one_result(_at_once(lambda: settle(engine, hold.hold_id, actor="t", key="settle")))
    assert balance(engine, user).available == (95 if settle is capture else 105)
    assert verify(engine)["ok"]
