"""Secrets never printed: masked values and database URLs without passwords."""

from __future__ import annotations

import re
from typing import Any


def mask(value: Any) -> str:
    if isinstance(value, tuple):
        return f"<{len(value)} set>" if value else "<not set>"
    return "<set>" if value else "<not set>"


_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|sslpassword|pass)=)[^&]*")


def mask_url(url: str) -> str:
    """The database URL without its password, in the user part or in the query."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        url = urlunsplit(parts._replace(netloc=netloc))
    return _QUERY_SECRET.sub(r"\1***", url)
