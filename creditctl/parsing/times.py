"""Times users type: a hold's time to live, and dates or ISO date-times read as UTC."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from creditctl.errors import InvalidInput
from creditctl.parsing.numbers import too_long
from creditctl.parsing.text import shown

_DURATION = re.compile(r"([0-9]+)\s*(s|sec|m|min|h|d)?")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
MAX_TTL = timedelta(days=7)
# A day of headroom at each end of Python's datetime, so a stored moment read back in any
# time zone (PostgreSQL's timestamptz, by the session's zone) still fits.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """A time to live such as 90s, 30m, 2h or 1d (a bare number is seconds), at most 7 days."""
    match = _DURATION.fullmatch(str(text).strip().lower())
    if not match:
        raise InvalidInput(
            f"duration {shown(text)} is not understood; use a number with s, m, h or d, such as 30m"
        )
    # Compared as seconds before a timedelta is built: a huge number overflows timedelta.
    digits = match.group(1)
    seconds = None if too_long(digits) else int(digits) * _UNITS[match.group(2)]
    if seconds == 0:
        raise InvalidInput(f"duration {shown(text)} must be longer than zero")
    if seconds is None or seconds > MAX_TTL.total_seconds():
        raise InvalidInput(f"duration {shown(text)} is longer than the limit of 7 days")
    return timedelta(seconds=seconds)


def parse_when(text: str, what: str = "date") -> datetime:
    """A date (2026-12-01) or an ISO date-time, read as UTC."""
    raw = str(text).strip()
    if not raw:
        raise InvalidInput(
            f"{what} is empty; give a date (YYYY-MM-DD) or an ISO date-time, "
            "or leave the option out"
        )
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
            moment = moment.astimezone(UTC)
    except ValueError:
        raise InvalidInput(
            f"{what} {shown(raw)} is not a date; use YYYY-MM-DD or an ISO "
            "date-time such as 2026-12-01T12:00:00Z"
        ) from None
    except OverflowError:  # a moment whose offset takes it past year 1 or 9999 in UTC
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise InvalidInput(
            f"{what} {shown(raw)} is out of range; give a moment from "
            f"{EARLIEST.date()} to {LATEST.date()} (UTC)"
        )
    return moment
