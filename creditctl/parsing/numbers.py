"""Whole numbers users type: credit amounts, signed deltas, and the ids of rows."""

from __future__ import annotations

import re

from creditctl.errors import InvalidInput
from creditctl.parsing.text import shown

_INTEGER = re.compile(r"[+-]?[0-9]+")
MAX_ID = 2**31 - 1  # ids are INTEGER columns: 32 bits on PostgreSQL
# More digits than any limit has: refused before int(), whose 4,300-digit cap raises otherwise.
MAX_DIGITS = 30


def too_long(digits: str) -> bool:
    """More significant digits than any limit allows (checked before int() or arithmetic)."""
    return len(digits.lstrip("+-").lstrip("0")) > MAX_DIGITS


def _whole_number(text: str | int, what: str, maximum: int) -> int:
    raw = str(text).strip()
    if not _INTEGER.fullmatch(raw):
        raise InvalidInput(f"{what} must be a whole number of credits, got {shown(raw)}")
    if too_long(raw):
        raise InvalidInput(
            f"{what} of {len(raw.lstrip('+-'))} digits is larger than the limit of "
            f"{maximum} credits (credits.max_amount)"
        )
    return int(raw)


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
    if not _INTEGER.fullmatch(raw) or too_long(raw) or not 0 < int(raw) <= MAX_ID:
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
