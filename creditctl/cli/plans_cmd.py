"""`creditctl plans ...`: the plans on both sides, and pushing them to Stripe."""

from __future__ import annotations

from typing import Annotated

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json
from creditctl.cli.output import emit_json, note, table

app = typer.Typer(
    help="Plans: list them with their Stripe side, and sync them to Stripe.\n\n"
    "Example: creditctl plans sync --dry-run",
    no_args_is_help=True,
)
LOCAL_COLUMNS = (
    "name",
    "credits",
    "amount",
    "currency",
    "interval",
    "lookup_key",
    "stripe_product_id",
    "stripe_price_id",
)
BOTH_COLUMNS = (
    "name",
    "credits",
    "amount",
    "interval",
    "lookup_key",
    "stripe_price_id",
    "stripe_side_price_id",
    "stripe_side_amount",
    "stripe_side_interval",
    "drift",
)
CHANGE_COLUMNS = ("plan", "object", "action", "detail", "stripe_id")


@app.command("list")
def list_command(
    local: Annotated[
        bool, typer.Option("--local", help="Only the local side; do not ask Stripe.")
    ] = False,
    json: Json = False,
) -> None:
    """List plans locally and as Stripe has them, flagging drift.

    Example: creditctl plans list --json
    """
    from creditctl.billing.catalog import plans_overview
    from creditctl.cli.stripe_cmd import gateway

    ctx = current()
    rows = plans_overview(ctx.engine, None if local else gateway(), ctx.settings.plans)
    if json:
        emit_json(rows)
        return
    table(rows, LOCAL_COLUMNS if local else BOTH_COLUMNS, title="plans", empty="no plans")
    drifting = [r["name"] for r in rows if str(r.get("drift", "")).startswith("DRIFT")]
    if drifting:
        note(f"drift in {', '.join(drifting)}: run `creditctl plans sync --dry-run` to see it")


@app.command("sync")
def sync_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the differences; change nothing.")
    ] = False,
    json: Json = False,
) -> None:
    """Create or update Stripe products and prices for the plans in the config.

    Example: creditctl plans sync --dry-run
    """
    from creditctl.billing.catalog import sync_plans
    from creditctl.cli.stripe_cmd import gateway

    ctx = current()
    changes = sync_plans(ctx.engine, gateway(), ctx.settings.plans, dry_run=dry_run)
    if json:
        emit_json({"dry_run": dry_run, "changes": changes})
        return
    verb = "would change" if dry_run else "changed"
    table(
        changes,
        CHANGE_COLUMNS,
        title=f"plans sync: {verb}",
        empty="plans are in step with Stripe; nothing to change",
    )
    if changes:
        done = "found; nothing changed (dry run)" if dry_run else "applied"
        note(f"{len(changes)} difference(s) {done}")
