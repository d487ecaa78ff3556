"""`creditctl subscriptions ...`: show, change, cancel and resume a user's subscription."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json, UserArg
from creditctl.cli.output import emit_json, note, say, table
from creditctl.clock import iso

if TYPE_CHECKING:
    from creditctl.billing.changes import SubscriptionChange

app = typer.Typer(
    help="A user's Stripe subscription: show, change plan, cancel, resume.\n\n"
    "Example: creditctl subscriptions show alice@example.com --remote",
    no_args_is_help=True,
)
COLUMNS = (
    "subscription_id",
    "plan",
    "status",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
)


def _print_change(change: SubscriptionChange, json: bool, what: str) -> None:
    if json:
        emit_json(change.as_dict())
        return
    sub = change.subscription
    ends = " (cancels at period end)" if sub.cancel_at_period_end else ""
    say(
        f"{sub.subscription_id}: {sub.status}{ends}, plan {sub.plan}, "
        f"period until {iso(sub.current_period_end) or '-'}"
    )
    granted = f"; granted {change.granted} plan credits" if change.granted else ""
    note(f"{what} for {change.user_id}: now on plan {change.user_plan}{granted}")


@app.command("show")
def show_command(
    user: UserArg,
    remote: Annotated[
        bool, typer.Option("--remote", help="Also show Stripe's side of the subscriptions.")
    ] = False,
    json: Json = False,
) -> None:
    """Show USER's subscription as recorded here and, with --remote, as Stripe has it.

    Example: creditctl subscriptions show alice@example.com --remote
    """
    from creditctl.billing.changes import show_subscriptions
    from creditctl.cli.stripe_cmd import gateway

    shown = show_subscriptions(current().engine, gateway() if remote else None, user)
    if json:
        emit_json(shown.as_dict())
        return
    table(
        shown.local,
        COLUMNS,
        title=f"subscriptions of {shown.user_id} (local)",
        empty=f"no subscription recorded locally for {shown.user_id}",
    )
    if shown.remote is not None:
        table(
            [sub.as_dict() for sub in shown.remote],
            COLUMNS,
            title=f"subscriptions of {shown.user_id} in Stripe "
            f"(customer {shown.customer_id or '-'})",
            empty=f"no subscription in Stripe for {shown.user_id}"
            + ("" if shown.customer_id else " (no Stripe customer yet)"),
        )


@app.command("change")
def change_command(
    user: UserArg,
    plan: Annotated[str, typer.Option("--plan", help="The new plan.", show_default=False)],
    proration: Annotated[
        str, typer.Option("--proration", help="create_prorations, always_invoice or none.")
    ] = "create_prorations",
    json: Json = False,
) -> None:
    """Move USER's subscription to PLAN; an upgrade's extra credits are granted at once.

    Example: creditctl subscriptions change alice@example.com --plan pro_plus --proration none
    """
    from creditctl.billing.changes import change_subscription
    from creditctl.cli.stripe_cmd import gateway

    ctx = current()
    result = change_subscription(
        ctx.engine, gateway(), user, plan, proration=proration, actor=ctx.operator
    )
    _print_change(result, json, f"changed to {plan}")


@app.command("cancel")
def cancel_command(
    user: UserArg,
    now: Annotated[
        bool,
        typer.Option("--now", help="End the subscription at once instead of at the period's end."),
    ] = False,
    json: Json = False,
) -> None:
    """Cancel USER's subscription at the end of the period (or --now).

    Example: creditctl subscriptions cancel alice@example.com
    """
    from creditctl.billing.changes import cancel_subscription
    from creditctl.cli.stripe_cmd import gateway

    ctx = current()
    result = cancel_subscription(
        ctx.engine,
        gateway(),
        user,
        immediately=now,
        actor=ctx.operator,
        ended_plan=ctx.settings["credits.default_plan"],
    )
    _print_change(result, json, "canceled now" if now else "set to cancel at period end")


@app.command("resume")
def resume_command(user: UserArg, json: Json = False) -> None:
    """Undo a pending cancel: USER's subscription renews again.

    Example: creditctl subscriptions resume alice@example.com
    """
    from creditctl.billing.changes import resume_subscription
    from creditctl.cli.stripe_cmd import gateway

    ctx = current()
    result = resume_subscription(ctx.engine, gateway(), user, actor=ctx.operator)
    _print_change(result, json, "resumed")
