"""Parsing of what users type: credit amounts, ids, references, durations, dates, emails, text."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from creditctl.errors import InvalidInput

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DURATION = re.compile(r"([0-9]+)\s*(s|sec|m|min|h|d)?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# C0, DEL and C1 controls (ESC starts terminal escapes; C1 CSI does too), line and paragraph
# separators, and the bidirectional overrides and isolates that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
MAX_TTL = timedelta(days=7)
MAX_ID = 2**31 - 1  # ids are INTEGER columns: 32 bits on PostgreSQL
# More digits than any limit has: refused before int(), whose 4,300-digit cap raises otherwise.
_MAX_DIGITS = 30
# A day of headroom at each end of Python's datetime, so a stored moment read back in any
# time zone (PostgreSQL's timestamptz, by the session's zone) still fits.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
MAX_EMAIL = 254
MAX_SEARCH = 254


def shown(text: object, limit: int = 60) -> str:
    """A value quoted for an error message: escaped, and cut short if long."""
    raw = str(text)
    return repr(raw) if len(raw) <= limit else f"{raw[:limit]!r}... ({len(raw)} characters)"


def control_character(text: str) -> str | None:
    """The first character of `text` that must not be stored, described; or None."""
    found = _CONTROL.search(text)
    if found:
        return f"a control character (U+{ord(found.group()):04X} at position {found.start() + 1})"
    # Bytes that are not UTF-8 reach Python as lone surrogates; no database can store them.
    found = _SURROGATE.search(text)
    return f"a byte that is not UTF-8 (at position {found.start() + 1})" if found else None


def check_text(text: str, what: str) -> str:
    """Refuse control characters in free text, so nothing stored can drive a terminal."""
    found = control_character(text)
    if found:
        raise InvalidInput(f"{what} contains {found}; remove it")
    return text


def printable(text: str) -> str:
    """Text with any control character shown as an escape, for printing what is stored."""
    escaped = _CONTROL.sub(lambda found: ascii(found.group())[1:-1], text)
    return _SURROGATE.sub(lambda found: ascii(found.group())[1:-1], escaped)


def parse_text(text: str, what: str, maximum: int) -> str:
    """Free text (a name, a reason, an operator): trimmed, 1 to `maximum` characters."""
    value = check_text(str(text), what).strip()
    if not value:
        raise InvalidInput(f"{what} is empty; give 1 to {maximum} characters")
    if len(value) > maximum:
        raise InvalidInput(f"{what} is longer than {maximum} characters; shorten it")
    return value


def _whole_number(text: str | int, what: str, maximum: int) -> int:
    raw = str(text).strip()
    if not _INTEGER.fullmatch(raw):
        raise InvalidInput(f"{what} must be a whole number of credits, got {shown(raw)}")
    if _too_long(raw):
        raise InvalidInput(
            f"{what} of {len(raw.lstrip('+-'))} digits is larger than the limit of "
            f"{maximum} credits (credits.max_amount)"
        )
    return int(raw)


def _too_long(digits: str) -> bool:
    return len(digits.lstrip("+-").lstrip("0")) > _MAX_DIGITS


def parse_amount(text: str | int, maximum: int, what: str = "amount") -> int:
    """A positive whole number of credits no larger than `maximum`."""
    amount = _whole_number(text, what, maximum)
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
    if not _INTEGER.fullmatch(raw) or _too_long(raw) or not 0 < int(raw) <= MAX_ID:
        raise InvalidInput(f"{what} must be a whole number from 1 to {MAX_ID}, got {shown(raw)}")
    return int(raw)


def parse_delta(text: str | int, maximum: int) -> int:
    """A non-zero whole number of credits, either sign, no larger than `maximum` in size."""
    delta = _whole_number(text, "delta", maximum)
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
    check_text(text, "reference")
    if not 1 <= len(text) <= 200:
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
            f"duration {shown(text)} is not understood; use a number with s, m, h or d, such as 30m"
        )
    # Compared as seconds before a timedelta is built: a huge number overflows timedelta.
    digits = match.group(1)
    seconds = None if _too_long(digits) else int(digits) * _UNITS[match.group(2)]
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


def parse_email(text: str) -> str:
    """An email address, trimmed; case is kept but compared case-insensitively."""
    email = check_text(str(text), "email").strip()
    if not _EMAIL.fullmatch(email) or len(email) > MAX_EMAIL:
        raise InvalidInput(
            f"email {shown(text, MAX_EMAIL + 20)} is malformed; "
            "expected something like name@example.com"
        )
    return email


def parse_search(text: str) -> str:
    """What `users search` looks for: part of an email, a user id or a Stripe customer id."""
    query = check_text(str(text), "search text").strip()
    if not query:
        raise InvalidInput("search text is empty; give part of an email, a user id or cus_...")
    if len(query) > MAX_SEARCH:
        raise InvalidInput(
            f"search text is longer than {MAX_SEARCH} characters, longer than any email; shorten it"
        )
    return query
