"""`creditctl audit ...`: operators' actions, and the ledger's invariants checked."""

from __future__ import annotations

from typing import Annotated

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json, UserFilter
from creditctl.cli.output import emit_json, note, table

app = typer.Typer(
    help="The audit log and ledger verification.\n\nExample: creditctl audit verify",
    no_args_is_help=True,
)


@app.command("log")
def log_command(
    user: UserFilter = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 100,
    json: Json = False,
) -> None:
    """Who changed what by hand, and why, oldest first.

    Example: creditctl audit log --user alice@example.com --json
    """
    from creditctl.ledger.audit import audit_records

    rows = audit_records(current().engine, user=user, limit=limit)
    if json:
        emit_json(rows)
    else:
        table(
            rows,
            ("id", "created_at", "operator", "action", "user_id", "entry_id", "reason"),
            title="audit log",
            empty="no audit records",
        )


@app.command("verify")
def verify_command(json: Json = False) -> None:
    """Recompute every balance from the ledger; exit 1 if any differs.

    Example: creditctl audit verify --json
    """
    from creditctl.ledger.audit import verify

    result = verify(current().engine)
    if json:
        emit_json(result)
    elif result["ok"]:
        note(
            f"ok: {result['users']} users, {result['entries']} entries, every balance "
            "equals its ledger"
        )
    else:
        table(
            result["problems"],
            ("user_id", "check", "cached", "recomputed"),
            title="ledger differences",
        )
    if not result["ok"]:
        raise typer.Exit(1)
