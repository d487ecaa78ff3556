"""Idempotency keys: a retried request returns its first result; a changed one is refused.

Keys are scoped per user and stored on the ledger entry the request wrote, with
a fingerprint of the request; a unique (user_id, idempotency_key) index makes
the first writer win even when two arrive at once. Import-light: no SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import re

from creditctl.errors import IdempotencyConflict, InvalidInput

_KEY = re.compile(r"[\x21-\x7e]{1,200}")
UNIQUE_KEY_CONSTRAINT = "uq_ledger_entries_user_id_idempotency_key"


def check_key(key: str | None) -> str | None:
    """A key is 1-200 printable ASCII characters without spaces."""
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            f"idempotency key must be 1 to 200 printable characters without spaces, got {key!r}"
        )
    return key


def fingerprint(operation: str, *parts: object) -> str:
    """A stable digest of what a request asked for."""
    text = "\x1f".join([operation, *("" if p is None else str(p) for p in parts)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def key_conflict(key: str, entry_id: int) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"idempotency key {key!r} was already used for a different request "
        f"(entry {entry_id}); use a new key for a new request"
    )


def is_key_race(exc: Exception) -> bool:
    """True when a concurrent request with the same key committed first."""
    text = str(getattr(exc, "orig", exc))
    return UNIQUE_KEY_CONSTRAINT in text or (
        "ledger_entries.user_id, ledger_entries.idempotency_key" in text
    )
