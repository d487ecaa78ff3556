"""The tables as SQLAlchemy Core objects, for set-based statements built once."""

from db.models import (
    AuditRecord,
    Grant,
    Hold,
    HoldAllocation,
    LedgerEntry,
    Plan,
    User,
)

users = User.__table__
plans = Plan.__table__
grants = Grant.__table__
holds = Hold.__table__
allocations = HoldAllocation.__table__
entries = LedgerEntry.__table__
audit_log = AuditRecord.__table__
