"""Options and arguments shared by many commands, and the checks they run as they are parsed."""

from __future__ import annotations

from typing import Annotated

import typer

MAX_USER_TEXT = 254  # a user id is at most 128 characters and an email at most 254


def _user(value: str | None) -> str | None:
    from creditctl.errors import InvalidInput
    from creditctl.parsing.text import check_text

    if value is None:
        return None
    check_text(value, "user")
    if len(value.strip()) > MAX_USER_TEXT:
        raise InvalidInput(
            f"user must be a user id or an email of at most {MAX_USER_TEXT} characters, "
            f"got {len(value)} characters"
        )
    return value


def _reference(value: str | None) -> str | None:
    from creditctl.parsing.text import parse_reference

    return parse_reference(value)


def _key(value: str | None) -> str | None:
    from creditctl.ledger.idempotency import check_key

    return check_key(value)


def _reason(value: str | None) -> str | None:
    from creditctl.parsing.text import check_text

    return None if value is None else check_text(value, "reason")


def _moment(label: str):
    def check(value: str | None) -> str | None:
        """Refuse an empty or malformed date now; the command reads it again when it needs it."""
        from creditctl.parsing.times import parse_when

        if value is not None:
            parse_when(value, label)
        return value

    return check


Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]
UserArg = Annotated[
    str, typer.Argument(callback=_user, help="User id or email.", show_default=False)
]
UserFilter = Annotated[
    str | None, typer.Option("--user", callback=_user, help="Only this user (id or email).")
]
AmountArg = Annotated[
    str, typer.Argument(help="A positive whole number of credits.", show_default=False)
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        callback=_key,
        help="Idempotency key: a retry with the same key returns the first result.",
    ),
]
Ref = Annotated[
    str | None,
    typer.Option("--ref", callback=_reference, help="Reference, e.g. a render id (max 200)."),
]
Reason = Annotated[
    str | None, typer.Option("--reason", callback=_reason, help="Why (required; audited).")
]
Since = Annotated[
    str | None,
    typer.Option("--since", callback=_moment("--since"), help="From this date (YYYY-MM-DD)."),
]
Until = Annotated[
    str | None,
    typer.Option("--until", callback=_moment("--until"), help="Before this date (YYYY-MM-DD)."),
]
