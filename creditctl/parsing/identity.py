"""Who a command is about: emails, user ids, a user named either way, and search text."""

from __future__ import annotations

import re

from creditctl.errors import InvalidInput
from creditctl.parsing.text import check_text, shown

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")
MAX_EMAIL = 254
MAX_SEARCH = 254
MAX_USER = MAX_EMAIL  # a user id is at most 128 characters and an email at most 254


def parse_email(text: str) -> str:
    """An email address, trimmed; case is kept but compared case-insensitively."""
    email = check_text(str(text), "email").strip()
    if not _EMAIL.fullmatch(email) or len(email) > MAX_EMAIL:
        raise InvalidInput(
            f"email {shown(text, MAX_EMAIL + 20)} is malformed; "
            "expected something like name@example.com"
        )
    return email


def check_user_id(user_id: str) -> str:
    """A new user's id as the product that owns the user names it."""
    if not _USER_ID.fullmatch(user_id):
        raise InvalidInput(
            f"user id {user_id!r} is not allowed; use 1-128 letters, digits, "
            "'_', '.', ':' or '-', starting with a letter or digit"
        )
    return user_id


def parse_user(text: str) -> str:
    """A user named on a command line, by id or by email; looked up as typed."""
    check_text(text, "user")
    if len(text.strip()) > MAX_USER:
        raise InvalidInput(
            f"user must be a user id or an email of at most {MAX_USER} characters, "
            f"got {len(text)} characters"
        )
    return text


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
