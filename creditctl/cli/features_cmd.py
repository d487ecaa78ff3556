"""`creditctl features check`: is a feature in the user's plan."""

from __future__ import annotations

from typing import Annotated

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json, UserArg
from creditctl.cli.output import emit_json, say

app = typer.Typer(
    help="Feature gating by plan.\n\n"
    "Example: creditctl features check alice@example.com scheduling",
    no_args_is_help=True,
)


def _feature(value: str) -> str:
    from creditctl.parsing.text import parse_text

    return parse_text(value, "feature", 200)


@app.command("check")
def check_command(
    user: UserArg,
    feature: Annotated[
        str,
        typer.Argument(
            callback=_feature, help="Feature name, e.g. scheduling.", show_default=False
        ),
    ],
    json: Json = False,
) -> None:
    """Exit 0 if USER's plan includes FEATURE, 3 if not.

    Example: creditctl features check alice@example.com advanced_workflows
    """
    from creditctl.accounts.plans import check_feature

    ctx = current()
    result = check_feature(ctx.engine, user, feature, ctx.policy)
    if json:
        emit_json(result)
    else:
        say(f"yes: {feature} is in plan {result['plan']}")
