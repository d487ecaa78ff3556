"""A database's failure in the ledger's words: one line, exit 7. No SQLAlchemy here.

Every path that touches the database reports a failure through `database_failure`: the
engine (SQLAlchemy's errors, creditctl.db.engine), the ledger's bare-driver path
(creditctl.ledger.drivers) and the CLI's last resort (creditctl.cli.app), so one condition
(a lock not granted in time, a full disk) reads the same and has the same error class on
every command. It reads the driver's own error, which SQLAlchemy's wraps as `orig`.
"""

from __future__ import annotations

from creditctl.config.masking import mask_url
from creditctl.errors import CreditctlError, DatabaseBusy, DatabaseUnavailable, SchemaOutOfDate


def database_failure(exc: BaseException, url: str | None) -> CreditctlError | None:
    """A database's failure as one line and exit code 7; None for what the caller translates
    (a unique key, a check) or does not expect. Takes SQLAlchemy's error or the driver's own."""
    orig = getattr(exc, "orig", None) or exc
    kinds = {kind.__name__ for kind in type(orig).__mro__}
    if "IntegrityError" in kinds:
        return None
    where = f"database {mask_url(url)}" if url else "the database"
    if kinds & {"OperationalError", "ProgrammingError"} and _is_missing_schema(orig):
        return SchemaOutOfDate(
            f"{where} has no creditctl tables or an old schema; run `creditctl init` first"
        )
    text = str(orig).strip()
    reason = text.splitlines()[0] if text else type(orig).__name__
    code = getattr(orig, "sqlite_errorname", None) or getattr(orig, "sqlstate", None) or ""
    failure = _sqlite_failure(code, where, reason) or _postgres_failure(code, where, reason)
    if failure is None and "OperationalError" in kinds and _is_unreachable(orig):
        failure = DatabaseUnavailable(_unreachable_message(where, reason))
    if failure is None and getattr(exc, "statement", "") is None and "DatabaseError" in kinds:
        # Raised while connecting (an option libpq does not know, a bad sslmode): no statement.
        failure = DatabaseUnavailable(_unreachable_message(where, reason))
    return failure


def busy_failure(exc: BaseException, url: str | None) -> DatabaseBusy | None:
    """The refusal for a lock not granted in time (SQLite's busy timeout, PostgreSQL's
    lock_timeout or statement_timeout), or None for any other failure."""
    failure = database_failure(exc, url)
    return failure if isinstance(failure, DatabaseBusy) else None


def _sqlite_failure(code: str, where: str, reason: str) -> CreditctlError | None:
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return DatabaseBusy(
            f"{where} stayed locked by another writer for longer than database.busy_timeout_ms; "
            "nothing was changed; try again, or raise database.busy_timeout_ms"
        )
    if code == "SQLITE_FULL":
        return DatabaseUnavailable(
            f"{where} cannot grow: the disk is full ({reason}); nothing was changed; "
            "free some space and try again"
        )
    if code.startswith("SQLITE_IOERR"):
        return DatabaseUnavailable(
            f"{where} could not be read or written ({reason}, {code}); check the disk and "
            "the file, then try again"
        )
    if code == "SQLITE_NOTADB":
        return DatabaseUnavailable(
            f"{where} is not a SQLite database ({reason}); point database.url at a creditctl "
            "database, or at a new file and run `creditctl init`"
        )
    if code.startswith("SQLITE_CORRUPT"):
        return DatabaseUnavailable(f"{where} is damaged ({reason}); restore it from a backup")
    if code.startswith("SQLITE_READONLY"):
        return DatabaseUnavailable(
            f"{where} cannot be written ({reason}); nothing was changed; check the permissions "
            "of the file and of its directory"
        )
    return None


def _postgres_failure(code: str, where: str, reason: str) -> CreditctlError | None:
    if code == "55P03":  # lock_not_available: lock_timeout ran out
        return DatabaseBusy(
            f"{where} gave up waiting for a lock ({reason}); nothing was changed; try again, "
            "or raise the role's lock_timeout"
        )
    if code == "57014":  # query_canceled: statement_timeout, or an operator's cancel
        return DatabaseBusy(
            f"{where} canceled the statement ({reason}); nothing was changed; try again, "
            "or raise the role's statement_timeout"
        )
    if code in {"40001", "40P01"}:  # serialization failure, deadlock
        return DatabaseBusy(
            f"{where} gave up a transaction ({reason}); nothing was changed; try again"
        )
    if code.startswith("53"):  # insufficient resources: disk full, out of memory, connections
        return DatabaseUnavailable(
            f"{where} is out of resources ({reason}); nothing was changed; try again later"
        )
    if code == "25006":  # read_only_sql_transaction: a standby
        return DatabaseUnavailable(
            f"{where} is read-only ({reason}); point database.url at the primary server"
        )
    if code.startswith(("08", "28", "3D", "57P")):  # connection, authorization, shutdown
        return DatabaseUnavailable(_unreachable_message(where, reason))
    return None


def _is_missing_schema(orig: BaseException) -> bool:
    text = str(orig).lower()
    return (
        "no such table" in text
        or "no such column" in text
        or ("relation" in text and "does not exist" in text)
        or ("column" in text and "does not exist" in text)
    )


def _is_unreachable(orig: BaseException) -> bool:
    text = str(orig).lower()
    return any(
        part in text
        for part in (
            "connection refused",
            "could not connect",
            "connection failed",
            "unable to open",
            "timeout expired",
            "does not exist",
            "no such host",
            "name or service not known",
            "password authentication failed",
            "could not translate host",
            # a pooled connection the server dropped (restart, failover, terminated backend)
            "terminating connection",
            "server closed the connection",
            "connection is closed",
            "consuming input failed",
        )
    )


def _unreachable_message(where: str, reason: str) -> str:
    return f"{where} is unreachable ({reason}); check database.url or CREDITCTL_DATABASE_URL"
