"""`creditctl users ...`: add, show, search and list users."""

from __future__ import annotations

from typing import Annotated

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json, UserArg
from creditctl.cli.output import emit_json, key_values, note, table

app = typer.Typer(
    help="Add and find users.\n\nExample: creditctl users search example.com", no_args_is_help=True
)
COLUMNS = ("id", "email", "name", "plan", "balance", "held", "stripe_customer_id", "created_at")
MAX_OFFSET = 2**31 - 1


def _print_user(user: dict, json: bool) -> None:
    if json:
        emit_json(user)
    else:
        key_values(list(user.items()))


@app.command("add")
def add_command(
    email: Annotated[
        str, typer.Argument(help="Email address (unique, any case).", show_default=False)
    ],
    id: Annotated[
        str | None,
        typer.Option("--id", help="Your product's id for the user (default: generated)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name (max 200).")] = None,
    plan: Annotated[
        str | None, typer.Option("--plan", help="Plan (default: credits.default_plan).")
    ] = None,
    json: Json = False,
) -> None:
    """Add a user with the welcome grant and their plan's first period.

    Example: creditctl users add alice@example.com --id u_1001 --name "Alice"
    """
    from creditctl.accounts.users import add_user

    ctx = current()
    user = add_user(
        ctx.engine,
        email,
        user_id=id,
        name=name,
        plan=plan,
        actor=ctx.operator,
        policy=ctx.policy,
    )
    note(
        f"added {user['id']} ({user['email']}) on plan {user['plan']} with "
        f"{user['balance']} credits"
    )
    _print_user(user, json)


@app.command("show")
def show_command(user: UserArg, json: Json = False) -> None:
    """Show one user.

    Example: creditctl users show alice@example.com
    """
    from creditctl.accounts.users import show_user

    _print_user(show_user(current().engine, user), json)


@app.command("search")
def search_command(
    query: Annotated[
        str,
        typer.Argument(
            help="Part of an email, a user id, or a Stripe customer id (cus_...).",
            show_default=False,
        ),
    ],
    json: Json = False,
) -> None:
    """Find users by email substring, exact id, or Stripe customer id.

    Example: creditctl users search example.com
    """
    from creditctl.accounts.users import search_users

    rows = search_users(current().engine, query)
    if json:
        emit_json(rows)
    else:
        table(rows, COLUMNS, title=f"users matching {query!r}", empty="no users match")


@app.command("list")
def list_command(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100000)] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, max=MAX_OFFSET)] = 0,
    json: Json = False,
) -> None:
    """List users, oldest first.

    Example: creditctl users list --limit 20 --json
    """
    from creditctl.accounts.users import list_users

    rows = list_users(current().engine, limit=limit, offset=offset)
    if json:
        emit_json(rows)
    else:
        table(rows, COLUMNS, title="users", empty="no users yet")
