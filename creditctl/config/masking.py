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
    """The database URL without its password, in the user part or in the query.

    Read by hand, not by a URL parser, so it never fails (it runs in the errors of malformed
    URLs) and a password holding '/', '?' or '@' unescaped is hidden too: everything up to
    the last '@' after the user name is masked, which may hide more than the password, never less.
    """
    scheme, separator, rest = url.partition("://")
    userinfo, at, after = rest.rpartition("@")
    if separator and at and ":" in userinfo:
        url = f"{scheme}://{userinfo.partition(':')[0]}:***@{after}"
    elif not separator and "@" in url:  # not a URL at all: keep only what follows the '@'
        url = "***@" + url.rpartition("@")[2]
    return _QUERY_SECRET.sub(r"\1***", url)
