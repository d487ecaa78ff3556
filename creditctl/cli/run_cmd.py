"""`creditctl run USER AMOUNT -- COMMAND`: pay for a command only if it succeeds."""

from __future__ import annotations

from typing import Annotated

import typer

from creditctl.cli.context import current
from creditctl.cli.options import AmountArg, Ref, UserArg


def run(
    user: UserArg,
    amount: AmountArg,
    command: Annotated[
        list[str],
        typer.Argument(help="The command and its arguments, after --.", show_default=False),
    ],
    ref: Ref = None,
    ttl: Annotated[
        str | None,
        typer.Option(
            "--ttl",
            help="Hold lifetime; longer than the command takes (default credits.hold_ttl).",
        ),
    ] = None,
) -> None:
    """Hold AMOUNT credits, run COMMAND, capture on exit 0, release otherwise.

    Exits with the command's own exit code, 3 (without running it) if credits are short, or 8
    if the command succeeded but its charge could not be recorded (the hold is left open; the
    message names the `credits capture` to run before it expires).

    Example: creditctl run alice@example.com 5 --ref render-42 -- ./render.sh scene.blend
    """
    from creditctl.cli.output import warn
    from creditctl.parsing.numbers import parse_amount
    from creditctl.parsing.times import parse_duration
    from creditctl.runner import run_with_hold

    ctx = current()
    credits = parse_amount(amount, ctx.settings["credits.max_amount"])
    lifetime = parse_duration(ctx.settings["credits.hold_ttl"] if ttl is None else ttl)
    outcome = run_with_hold(
        ctx.engine,
        user,
        credits,
        command,
        ttl=lifetime,
        actor=ctx.operator,
        policy=ctx.policy,
        ref=ref,
    )
    warn(outcome.warnings)
    raise typer.Exit(outcome.exit_code)
