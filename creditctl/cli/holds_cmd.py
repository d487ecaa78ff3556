"""`creditctl holds ...`: open holds, and the sweep that returns expired ones."""

from __future__ import annotations

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json, UserFilter
from creditctl.cli.output import emit_json, note, table

app = typer.Typer(
    help="List open holds; expire those past their time to live.\n\n"
    "Example: creditctl holds list --user alice@example.com",
    no_args_is_help=True,
)


@app.command("list")
def list_command(
    user: UserFilter = None,
    json: Json = False,
) -> None:
    """Open holds, oldest first.

    Example: creditctl holds list --user alice@example.com
    """
    from creditctl.ledger.holds import open_holds

    rows = open_holds(current().engine, user=user)
    if json:
        emit_json(rows)
    else:
        table(
            rows,
            ("hold_id", "user_id", "amount", "reference", "created_at", "expires_at", "state"),
            title="open holds",
            empty="no open holds",
        )


@app.command("expire")
def expire_command(json: Json = False) -> None:
    """Release every hold past its time to live (the daemon runs this on a schedule).

    Example: creditctl holds expire
    """
    from creditctl.ledger.holds import expire

    result = expire(current().engine)
    if json:
        emit_json(result)
    else:
        note(f"swept {result['users']} users: {result['entries']} entries written")
