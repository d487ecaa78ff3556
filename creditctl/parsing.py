"""Parsing of what users type: credit amounts, ids, references, durations, dates, emails."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from creditctl.errors import InvalidInput

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DURATION = re.compile(r"([0-9]+)\s*(s|sec|m|min|h|d)?")
_REFERENCE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
MAX_TTL = timedelta(days=7)
MAX_ID = 2**31 - 1  # ids are INTEGER columns: 32 bits on PostgreSQL


def _whole_number(text: str | int, what: str) -> int:
    raw = str(text).strip()
    if not _INTEGER.fullmatch(raw):
        raise InvalidInput(f"{what} must be a whole number of credits, got {raw!r}")
    return int(raw)


def parse_amount(text: str | int, maximum: int, what: str = "amount") -> int:
    """A positive whole number of credits no larger than `maximum`."""
    amount = _whole_number(text, what)
    if amount <= 0:
        raise InvalidInput(f"{what} must be a positive whole number of credits, got {amount}")
    if amount > maximum:
        raise InvalidInput(
            f"{what} {amount} is larger than the limit of {maximum} credits (credits.max_amount)"
        )
    return amount


def parse_id(text: str | int, what: str) -> int:
    """A positive whole number naming a row (an entry or hold id); not bound by credit limits."""
    raw = str(text).strip()
    if not _INTEGER.fullmatch(raw) or not 0 < int(raw) <= MAX_ID:
        raise InvalidInput(f"{what} must be a whole number from 1 to {MAX_ID}, got {raw!r}")
    return int(raw)


def parse_delta(text: str | int, maximum: int) -> int:
    """A non-zero whole number of credits, either sign, no larger than `maximum` in size."""
    delta = _whole_number(text, "delta")
    if delta == 0:
        raise InvalidInput(
            "delta must not be zero: give a positive number to add credits "
            "or a negative one to remove them"
        )
    if abs(delta) > maximum:
        raise InvalidInput(
            f"delta {delta} is larger than the limit of {maximum} credits (credits.max_amount)"
        )
    return delta


def parse_reference(text: str | None) -> str | None:
    """A reference (render id, invoice id): 1-200 characters, no control characters."""
    if text is None:
        return None
    if not _REFERENCE.fullmatch(text):
        raise InvalidInput(
            "reference must be 1 to 200 characters without control characters, "
            f"got {len(text)} characters"
        )
    return text


def parse_duration(text: str) -> timedelta:
    """A time to live such as 90s, 30m, 2h or 1d (a bare number is seconds), at most 7 days."""
    match = _DURATION.fullmatch(str(text).strip().lower())
    if not match:
        raise InvalidInput(
            f"duration {text!r} is not understood; use a number with s, m, h or d, such as 30m"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidInput(f"duration {text!r} must be longer than zero")
    if timedelta(seconds=seconds) > MAX_TTL:
        raise InvalidInput(f"duration {text!r} is longer than the limit of 7 days")
    return timedelta(seconds=seconds)


def parse_when(text: str, what: str = "date") -> datetime:
    """A date (2026-12-01) or an ISO date-time, read as UTC."""
    raw = str(text).strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what} {raw!r} is not a date; use YYYY-MM-DD or an ISO "
            "date-time such as 2026-12-01T12:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_email(text: str) -> str:
    """An email address, trimmed; case is kept but compared case-insensitively."""
    email = str(text).strip()
    if not _EMAIL.fullmatch(email) or len(email) > 254:
        raise InvalidInput(f"email {text!r} is malformed; expected something like name@example.com")
    return email
