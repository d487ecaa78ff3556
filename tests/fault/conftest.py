"""The fault suite's fixtures: the webhook tests' helpers on the path, a database per round."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The event builders and the daemon's support live beside the webhook tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "webhooks"))

from fault_databases import RoundDatabases


@pytest.fixture
def round_databases(backend, tmp_path, request) -> Iterator[RoundDatabases]:
    """Fresh migrated databases on the test's backend, one per round."""
    template = request.getfixturevalue("sqlite_template" if backend == "sqlite" else "pg_template")
    databases = RoundDatabases(backend, template, tmp_path)
    yield databases
    databases.drop_all()
