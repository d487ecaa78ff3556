"""The application's clock and calendar: every time creditctl writes or compares comes from here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    """Now, as an aware UTC datetime: the form every timestamp is stored in."""
    return datetime.now(UTC)


def add_months(moment: datetime, months: int = 1) -> datetime:
    """The same day-of-month `months` later, clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def period_end(start: datetime, interval: str) -> datetime:
    """End of a billing period of one `interval` beginning at `start`."""
    if interval == "month":
        return add_months(start, 1)
    if interval == "year":
        return add_months(start, 12)
    return start + (timedelta(days=7) if interval == "week" else timedelta(days=1))


def iso(moment: datetime | None) -> str | None:
    """A stored UTC timestamp as ISO 8601 with a Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
