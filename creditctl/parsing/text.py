"""Free text: nothing stored may drive a terminal; names, reasons, references, features."""

from __future__ import annotations

import re

from creditctl.errors import InvalidInput

# C0, DEL and C1 controls (ESC starts terminal escapes; C1 CSI does too), line and paragraph
# separators, and the bidirectional overrides and isolates that reorder what a terminal shows.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Bytes that are not UTF-8 reach Python as lone surrogates; no database can store them.
SURROGATE = re.compile("[\ud800-\udfff]")
MAX_NAME = 200
MAX_REASON = 500
MAX_REFERENCE = 200


def shown(text: object, limit: int = 60) -> str:
    """A value quoted for an error message: escaped, and cut short if long."""
    raw = str(text)
    return repr(raw) if len(raw) <= limit else f"{raw[:limit]!r}... ({len(raw)} characters)"


def control_character(text: str) -> str | None:
    """The first character of `text` that must not be stored, described; or None."""
    found = CONTROL.search(text)
    if found:
        return f"a control character (U+{ord(found.group()):04X} at position {found.start() + 1})"
    found = SURROGATE.search(text)
    return f"a byte that is not UTF-8 (at position {found.start() + 1})" if found else None


def check_text(text: str, what: str) -> str:
    """Refuse control characters in free text, so nothing stored can drive a terminal."""
    found = control_character(text)
    if found:
        raise InvalidInput(f"{what} contains {found}; remove it")
    return text


def parse_text(text: str, what: str, maximum: int) -> str:
    """Free text (a feature, an operator): trimmed, 1 to `maximum` characters."""
    value = check_text(str(text), what).strip()
    if not value:
        raise InvalidInput(f"{what} is empty; give 1 to {maximum} characters")
    if len(value) > maximum:
        raise InvalidInput(f"{what} is longer than {maximum} characters; shorten it")
    return value


def check_reason(reason: str | None) -> str:
    """An operator's reason for a change, required and audited; kept as typed."""
    if reason is not None:
        check_text(reason, "reason")
    if reason is None or not reason.strip():
        raise InvalidInput('a reason is required: pass --reason "why this change is made"')
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is longer than {MAX_REASON} characters; shorten it")
    return reason


def check_name(name: str | None) -> str | None:
    """A user's display name (optional), kept as typed."""
    if name is None:
        return None
    check_text(name, "name")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"name is longer than {MAX_NAME} characters; shorten it")
    return name


def parse_reference(text: str | None) -> str | None:
    """A reference (render id, invoice id): 1-200 characters, no control characters."""
    if text is None:
        return None
    check_text(text, "reference")
    if not 1 <= len(text) <= MAX_REFERENCE:
        raise InvalidInput(
            f"reference must be 1 to {MAX_REFERENCE} characters without control characters, "
            f"got {len(text)} characters"
        )
    return text
