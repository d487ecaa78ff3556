"""Idempotency keys: a retried request returns its first result; a changed one is refused.

Keys are scoped per user and stored on the ledger entry the request wrote, with
a fingerprint of the request; a unique (user_id, idempotency_key) index makes
the first writer win even when two arrive at once.
"""

from __future__ import annotations

import hashlib
import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from creditctl.errors import IdempotencyConflict, InvalidInput
from creditctl.tables import entries

_KEY = re.compile(r"[\x21-\x7e]{1,200}")
UNIQUE_KEY_CONSTRAINT = "uq_ledger_entries_user_id_idempotency_key"

_FIND = sa.select(
    entries.c.id, entries.c.request_hash, entries.c.type, entries.c.amount,
    entries.c.balance_after, entries.c.hold_id, entries.c.grant_id, entries.c.created_at,
).where(entries.c.user_id == sa.bindparam("uid"), entries.c.idempotency_key == sa.bindparam("key"))


def check_key(key: str | None) -> str | None:
    """A key is 1-200 printable ASCII characters without spaces."""
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidInput("idempotency key must be 1 to 200 printable characters without "
                           f"spaces, got {key!r}")
    return key


def fingerprint(operation: str, *parts: object) -> str:
    """A stable digest of what a request asked for."""
    text = "\x1f".join([operation, *("" if p is None else str(p) for p in parts)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def find_previous(conn: Connection, user_id: str, key: str | None, request: str) -> Row | None:
    """The entry an earlier request with this key wrote, or None; a different request conflicts."""
    if key is None:
        return None
    row = conn.execute(_FIND, {"uid": user_id, "key": key}).first()
    if row is not None and row.request_hash != request:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was already used for a different request "
            f"(entry {row.id}); use a new key for a new request")
    return row


def is_key_race(exc: sa.exc.IntegrityError) -> bool:
    """True when a concurrent request with the same key committed first."""
    return UNIQUE_KEY_CONSTRAINT in str(exc.orig) or (
        "ledger_entries.user_id, ledger_entries.idempotency_key" in str(exc.orig))
