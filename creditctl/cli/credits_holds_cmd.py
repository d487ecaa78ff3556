"""`creditctl credits reserve|capture|release`: holds for a render, set aside then settled."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from creditctl.cli.context import current
from creditctl.cli.options import SIGNED, AmountArg, Json, Key, Ref, UserArg, credit_amount
from creditctl.cli.output import emit_json, note, say
from creditctl.clock import iso

if TYPE_CHECKING:
    from creditctl.ledger.holds import HoldResult

HoldArg = Annotated[str, typer.Argument(help="Hold id.", show_default=False)]


def reserve_command(
    user: UserArg,
    amount: AmountArg,
    ttl: Annotated[
        str | None,
        typer.Option(
            "--ttl", help="How long the hold lasts (90s, 30m, 2h); default credits.hold_ttl."
        ),
    ] = None,
    ref: Ref = None,
    key: Key = None,
    json: Json = False,
) -> None:
    """Put AMOUNT credits on hold for a render; prints the hold id.

    Example: creditctl credits reserve alice@example.com 5 --ttl 30m --ref render-42
    """
    from creditctl.ledger.holds import reserve
    from creditctl.parsing.times import parse_duration

    ctx = current()
    credits = credit_amount(amount)
    lifetime = parse_duration(ctx.settings["credits.hold_ttl"] if ttl is None else ttl)
    result = reserve(
        ctx.engine,
        user,
        credits,
        ttl=lifetime,
        actor=ctx.operator,
        policy=ctx.policy,
        ref=ref,
        key=key,
    )
    _print_hold(result, json)


def capture_command(
    hold_id: HoldArg,
    amount: Annotated[
        str | None,
        typer.Argument(help="Credits to spend (default: the whole hold).", show_default=False),
    ] = None,
    key: Key = None,
    json: Json = False,
) -> None:
    """Spend a hold (or AMOUNT of it); the rest returns to the balance.

    Example: creditctl credits capture 17 3
    """
    from creditctl.ledger.holds import capture

    ctx = current()
    hold = _hold_id(hold_id)
    spend = credit_amount(amount) if amount is not None else None
    result = capture(ctx.engine, hold, spend, actor=ctx.operator, key=key)
    _print_hold(result, json)


def release_command(hold_id: HoldArg, key: Key = None, json: Json = False) -> None:
    """Return every credit of a hold to the balance.

    Example: creditctl credits release 17
    """
    from creditctl.ledger.holds import release

    ctx = current()
    result = release(ctx.engine, _hold_id(hold_id), actor=ctx.operator, key=key)
    _print_hold(result, json)


def register(app: typer.Typer) -> None:
    """Add the hold commands to the `credits` group, after its other commands."""
    app.command("reserve", context_settings=SIGNED)(reserve_command)
    app.command("capture", context_settings=SIGNED)(capture_command)
    app.command("release", context_settings=SIGNED)(release_command)


def _hold_id(text: str) -> int:
    from creditctl.parsing.numbers import parse_id

    return parse_id(text, "hold id")


def _print_hold(result: HoldResult, json: bool) -> None:
    if json:
        emit_json(result.as_dict())
        return
    say(str(result.hold_id))
    note(
        f"hold {result.hold_id} ({result.status}): {result.amount} credits for "
        f"{result.user_id}, expires {iso(result.expires_at)}; available "
        f"{result.available}{' (already done: same key)' if result.replayed else ''}"
    )
