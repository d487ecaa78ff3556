"""Seeds for the fault tests: fresh ones each run, or the ones given to replay a failure."""

from __future__ import annotations

import os
import random


def seeds(default_count: int) -> list[int]:
    """CREDITCTL_FAULT_SEED (comma-separated) if set, else CREDITCTL_FAULT_ROUNDS new ones."""
    chosen = os.environ.get("CREDITCTL_FAULT_SEED", "").strip()
    if chosen:
        return [int(seed) for seed in chosen.replace(" ", "").split(",") if seed]
    count = int(os.environ.get("CREDITCTL_FAULT_ROUNDS", default_count))
    return [random.SystemRandom().randrange(2**32) for _ in range(count)]


def replay_hint(seed: int, test: str, backend: str) -> str:
    return f"replay: CREDITCTL_FAULT_SEED={seed} pytest -s tests/fault -k '{test} and {backend}'"
