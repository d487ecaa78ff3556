"""`creditctl plans ...`: the plans on both sides, and pushing them to Stripe."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json
from creditctl.cli.output import emit_json, note, table

if TYPE_CHECKING:
    from creditctl.billing.catalog import PlanOverview, StripeSide

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
    overview = plans_overview(ctx.engine, None if local else gateway(), ctx.settings.plans)
    rows = [_row(plan) for plan in overview]
    if json:
        emit_json(rows)
        return
    table(rows, LOCAL_COLUMNS if local else BOTH_COLUMNS, title="plans", empty="no plans")
    drifting = [plan.name for plan in overview if plan.drifting]
    if drifting:
        note(f"drift in {', '.join(drifting)}: run `creditctl plans sync --dry-run` to see it")


def _row(plan: PlanOverview) -> dict[str, Any]:
    """The plan as --json and the table show it: with Stripe asked, its drift column last."""
    if plan.stripe is None:
        return plan.as_dict()
    return {**plan.as_dict(), "drift": _drift(plan.stripe)}


def _drift(side: StripeSide) -> str:
    """The drift column: why a plan is not compared, or in step, or what sync would change."""
    if not side.in_config:
        return "not in config"
    if not side.sold:
        return "local only (free plan)"
    if not side.differences:
        return "in step"
    return "DRIFT: " + "; ".join(f"{d.target} {d.action}" for d in side.differences)


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
    differences = sync_plans(ctx.engine, gateway(), ctx.settings.plans, dry_run=dry_run)
    changes = [difference.as_dict() for difference in differences]
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
