"""Write transactions for the ledger, and the database's refusals in the ledger's words."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from creditctl.db.engine import write
from creditctl.db.models import MAX_CREDITS
from creditctl.errors import (
    AlreadyReversed,
    CreditctlError,
    DuplicateUser,
    InvalidInput,
)
from creditctl.ledger.idempotency import is_key_race

T = TypeVar("T")


# --- transactions ------------------------------------------------------------------------------


def run_write(engine: Engine, operation: Callable[[Connection], T]) -> T:
    """Run `operation` in one write transaction, retrying once if an idempotency key raced."""
    for attempt in (1, 2):
        try:
            with write(engine) as conn:
                return operation(conn)
        except sa.exc.IntegrityError as exc:
            if attempt == 1 and is_key_race(exc):
                continue
            raise translate_integrity_error(exc) from None
    raise AssertionError("unreachable")


def translate_integrity_error(exc: sa.exc.IntegrityError) -> CreditctlError:
    text = str(exc.orig)
    if "email_key" in text:
        return DuplicateUser("a user with that email already exists")
    if "pk_users" in text or "users.id" in text:
        return DuplicateUser("a user with that id already exists")
    if "reverses_entry_id" in text:
        return AlreadyReversed("that entry has already been reversed")
    if "balance_bounded" in text:
        return InvalidInput(
            f"that change would take the balance past the limit of {MAX_CREDITS} credits"
        )
    return CreditctlError(f"the database refused the change: {text.splitlines()[0]}")
