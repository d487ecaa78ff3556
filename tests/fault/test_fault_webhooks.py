"""Seeded fault rounds: subscription and invoice deliveries against real daemon replicas.

Each round tells a handful of subscriptions as Stripe events in both API generations and
delivers them duplicated and out of order to two or three `creditctl daemon` processes at
once, SIGKILLing replicas (and on PostgreSQL ending their server connections) at random
points, with retry jobs running beside them; then delivers again what got no 2xx, as
Stripe does, and runs the retry job (`webhooks replay --failed`, then the scheduler's job
as it runs minutes later). After each round: every paid period granted exactly
once, no unpaid one granted, payment state as the newest event says, `audit verify` clean.

Every round prints its seed. Replay failing ones with
    CREDITCTL_FAULT_SEED=<seed>[,<seed>...] pytest -s tests/fault -k 'granted_once and sqlite'
and run longer with CREDITCTL_FAULT_ROUNDS=<n> (and CREDITCTL_FAULT_STORIES=<n> per round).
A seed replays the same stories and fault schedule with the same version of this suite;
the operating system's timing still varies from run to run.
"""

from __future__ import annotations

from traceback import format_exc

import pytest
from fault_round import Round
from fault_seeds import replay_hint, seeds

pytestmark = [pytest.mark.fault, pytest.mark.slow]

ROUNDS = 4  # about 60 s per backend on a shared 2-core machine


def test_every_paid_period_is_granted_once_whatever_the_faults(
    backend, database_url, round_databases, policy, tmp_path
):
    reports = []
    for number, seed in enumerate(seeds(ROUNDS)):
        url = database_url if number == 0 else round_databases.fresh()
        hint = replay_hint(seed, "granted_once", backend)
        try:
            result = Round(seed, url, backend, tmp_path / f"round-{number}", policy).run()
        except Exception:  # noqa: BLE001 - the harness broke: report it beside the other rounds
            reports.append(f"fault round seed={seed} broke the harness\n{hint}\n" + format_exc())
            continue
        print(result.summary(), flush=True)
        if result.problems:
            reports.append(
                f"{result.summary()}\n{hint}\n" + "\n".join(result.problems + result.details)
            )
    if reports:
        pytest.fail("\n\n".join(reports), pytrace=False)
