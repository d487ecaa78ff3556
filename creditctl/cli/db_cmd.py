"""`creditctl init` and `creditctl db ...`: schema migrations and plan loading."""

from __future__ import annotations

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json
from creditctl.cli.output import emit_json, note

app = typer.Typer(
    help="Database schema (Alembic).\n\nExample: creditctl db current", no_args_is_help=True
)


def init(json: Json = False) -> None:
    """Create or upgrade the database and load the plans from the config.

    Example: creditctl --database-url sqlite:///creditctl.db init
    """
    from creditctl.accounts.plans import init_database

    ctx = current()
    ctx.create_database = True
    done = init_database(ctx.engine, ctx.settings.plans)
    if json:
        emit_json(done.as_dict())
        return
    _print_revision(done.revision_before, done.revision)
    note("plans: " + ", ".join(f"{name} {change}" for name, change in done.plans.items()))


def _print_revision(before: str | None, after: str | None) -> None:
    note(f"schema at revision {after}" + (f" (was {before})" if before != after else ""))


@app.command("upgrade")
def upgrade_command(json: Json = False) -> None:
    """Upgrade the schema to the newest revision.

    Example: creditctl db upgrade
    """
    from creditctl.db.migrate import upgrade

    ctx = current()
    ctx.create_database = True
    before, after = upgrade(ctx.engine)
    if json:
        emit_json({"revision_before": before, "revision": after})
    else:
        _print_revision(before, after)


@app.command("current")
def current_command(json: Json = False) -> None:
    """Print the schema revision of the database and the newest one known.

    Example: creditctl db current --json
    """
    from creditctl.db.migrate import current as current_revision
    from creditctl.db.migrate import head

    revision, newest = current_revision(current().engine), head()
    if json:
        emit_json({"revision": revision, "head": newest, "up_to_date": revision == newest})
        return
    state = "up to date" if revision == newest else f"behind head {newest}; run creditctl init"
    typer.echo(f"{revision or 'none'} ({state})")
