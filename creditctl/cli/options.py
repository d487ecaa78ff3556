"""Options and arguments shared by many commands, each parsed once, as it is read.

A callback or parser here hands the command the parsed value; the command does not read
the text again. Rules about what a value means (a reason is required, a grant's source)
belong to the domain, which checks them once for every caller.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer

from creditctl.cli.context import current

# Negative numbers reach the command as arguments (and get a clear refusal), not as options.
SIGNED = {"ignore_unknown_options": True}


def _user(value: str | None) -> str | None:
    from creditctl.parsing.identity import parse_user

    return None if value is None else parse_user(value)


def _reference(value: str | None) -> str | None:
    from creditctl.parsing.text import parse_reference

    return parse_reference(value)


def _key(value: str | None) -> str | None:
    from creditctl.ledger.idempotency import check_key

    return check_key(value)


def moment(label: str) -> Callable[[str], datetime]:
    """A parser for a date option: the command receives the moment, in UTC."""

    def parse(value: str) -> datetime:
        from creditctl.parsing.times import parse_when

        return parse_when(value, label)

    return parse


def credit_amount(text: str, what: str = "amount") -> int:
    """A positive number of credits within credits.max_amount (read from the settings, so
    parsed by the command, not while the command line is read)."""
    from creditctl.parsing.numbers import parse_amount

    return parse_amount(text, current().settings["credits.max_amount"], what)


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
Reason = Annotated[str | None, typer.Option("--reason", help="Why (required; audited).")]
Since = Annotated[
    datetime | None,
    typer.Option("--since", parser=moment("--since"), help="From this date (YYYY-MM-DD)."),
]
Until = Annotated[
    datetime | None,
    typer.Option("--until", parser=moment("--until"), help="Before this date (YYYY-MM-DD)."),
]
