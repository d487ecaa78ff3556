"""Options and arguments shared by many commands."""

from __future__ import annotations

from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]
UserArg = Annotated[str, typer.Argument(help="User id or email.", show_default=False)]
UserFilter = Annotated[str | None, typer.Option("--user", help="Only this user (id or email).")]
AmountArg = Annotated[
    str, typer.Argument(help="A positive whole number of credits.", show_default=False)
]


def _reference(value: str | None) -> str | None:
    from creditctl.parsing import parse_reference

    return parse_reference(value)


def _key(value: str | None) -> str | None:
    from creditctl.ledger.idempotency import check_key

    return check_key(value)


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
Since = Annotated[str | None, typer.Option("--since", help="From this date (YYYY-MM-DD).")]
Until = Annotated[str | None, typer.Option("--until", help="Before this date (YYYY-MM-DD).")]
