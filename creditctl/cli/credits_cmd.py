"""`creditctl credits ...`: the ledger commands render scripts and operators use."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from creditctl.cli.context import current
from creditctl.cli.options import AmountArg, Json, Key, Reason, Ref, Since, Until, UserArg
from creditctl.cli.output import emit_json, note, say, table, warn, write_csv

app = typer.Typer(
    help="Balances, deducts, grants, adjustments, reversals, holds and history.\n\n"
    "Example: creditctl credits deduct alice@example.com 1 --ref render-42",
    no_args_is_help=True,
)

# Negative numbers reach the command as arguments (and get a clear refusal), not as options.
SIGNED = {"ignore_unknown_options": True}
HISTORY_COLUMNS = (
    "id",
    "created_at",
    "type",
    "amount",
    "balance_after",
    "quantity",
    "reference",
    "actor",
    "description",
)


def _amount(text: str, what: str = "amount") -> int:
    from creditctl.parsing.numbers import parse_amount

    return parse_amount(text, current().settings["credits.max_amount"], what)


def _reason(reason: str | None) -> str:
    """The reason as typed, once it passes the ledger's rule (checked here to report it first)."""
    from creditctl.ledger.corrections import require_reason

    require_reason(reason)
    assert reason is not None
    return reason


def _id(text: str, what: str) -> int:
    from creditctl.parsing.numbers import parse_id

    return parse_id(text, what)


def _balance_payload(balance: Any, warnings: list[str], **extra: Any) -> dict[str, Any]:
    return {**balance.as_dict(), **extra, "warnings": warnings}


def _shown(unlimited: bool, available: int) -> str:
    return "unlimited" if unlimited else str(available)


@app.command("balance")
def balance_command(user: UserArg, json: Json = False) -> None:
    """Show what a user can spend now and what is on hold.

    Example: creditctl credits balance alice@example.com --json
    """
    from creditctl.ledger.fastpath import balance

    ctx = current()
    result = balance(ctx.database, user)
    warnings = result.warnings(ctx.policy)
    if json:
        emit_json(_balance_payload(result, warnings))
        return
    say(
        f"{result.user_id} ({result.email}) plan {result.plan}: available "
        f"{_shown(result.unlimited, result.available)}, held {result.held}"
    )
    warn(warnings)


@app.command("check", context_settings=SIGNED)
def check_command(user: UserArg, amount: AmountArg, json: Json = False) -> None:
    """Exit 0 if USER can spend AMOUNT credits now, 3 if not (and why). Changes nothing.

    The same rules as deduct: an unknown user, too few credits, or usage suspended
    after a failed payment are refused with deduct's message and exit code.

    Example: creditctl credits check alice@example.com 5 && render.sh
    """
    from creditctl.ledger.fastpath import check

    ctx = current()
    verdict = check(ctx.database, user, _amount(amount), policy=ctx.policy)
    found = verdict.balance
    warnings = found.warnings(ctx.policy)
    payload = _balance_payload(found, warnings, needed=verdict.needed, ok=verdict.ok)
    if verdict.refusal is not None:
        verdict.refusal.details.update(payload)  # with --json, the refusal's data is this payload
        raise verdict.refusal
    if json:
        emit_json(payload)
    else:
        say(
            f"ok: {user} can spend {verdict.needed} (available "
            f"{_shown(found.unlimited, found.available)})"
        )
    warn(warnings)


@app.command("deduct", context_settings=SIGNED)
def deduct_command(
    user: UserArg, amount: AmountArg, ref: Ref = None, key: Key = None, json: Json = False
) -> None:
    """Spend AMOUNT credits, or refuse (exit 3) and change nothing.

    Example: creditctl credits deduct alice@example.com 1 --ref render-42 --key render-42
    """
    from creditctl.ledger.fastpath import deduct

    ctx = current()
    credits = _amount(amount)
    # --ref and --key were checked by their options' callbacks.
    spent = deduct(
        ctx.database, user, credits, actor=ctx.operator, policy=ctx.policy, ref=ref, key=key
    )
    warnings = spent.warnings(ctx.policy)
    if json:
        emit_json(
            {
                "user_id": spent.user_id,
                "entry_id": spent.entry_id,
                "amount": spent.amount,
                "available": spent.available,
                "held": spent.held,
                "plan": spent.plan,
                "unlimited": spent.unlimited,
                "replayed": spent.replayed,
                "warnings": warnings,
            }
        )
    else:
        again = " (already done: same key)" if spent.replayed else ""
        say(
            f"deducted {credits} from {spent.user_id}: entry {spent.entry_id}, "
            f"available {_shown(spent.unlimited, spent.available)}{again}"
        )
    warn(warnings)


def _print_posting(posting: Any, verb: str, json: bool) -> None:
    if json:
        emit_json(
            {
                "user_id": posting.user_id,
                "entry_id": posting.entry_id,
                "type": posting.type,
                "amount": posting.amount,
                "balance_after": posting.balance_after,
                "grant_id": posting.grant_id,
                "replayed": posting.replayed,
            }
        )
        return
    again = " (already done: same key)" if posting.replayed else ""
    say(
        f"{verb} {posting.amount:+d} for {posting.user_id}: entry {posting.entry_id}, "
        f"balance {posting.balance_after}{again}"
    )


@app.command("grant", context_settings=SIGNED)
def grant_command(
    user: UserArg,
    amount: AmountArg,
    reason: Reason = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", help="Expiry date (YYYY-MM-DD or ISO date-time); default: never."
        ),
    ] = None,
    source: Annotated[str, typer.Option("--source", help="bonus, promotion or admin.")] = "bonus",
    key: Key = None,
    json: Json = False,
) -> None:
    """Give USER AMOUNT credits, with a reason (audited).

    Example: creditctl credits grant alice@example.com 50 --reason "make-good" --expires 2027-01-31
    """
    from creditctl.errors import InvalidInput
    from creditctl.ledger.corrections import grant
    from creditctl.parsing.times import parse_when

    if source not in {"bonus", "promotion", "admin"}:
        raise InvalidInput(f"source {source!r} is not one of bonus, promotion, admin")
    ctx = current()
    credits = _amount(amount)
    why = _reason(reason)
    expires_at = parse_when(expires, "expiry") if expires is not None else None
    posting = grant(
        ctx.engine,
        user,
        credits,
        actor=ctx.operator,
        reason=why,
        source=source,
        expires_at=expires_at,
        key=key,
    )
    _print_posting(posting, "granted", json)


@app.command("adjust", context_settings=SIGNED)
def adjust_command(
    user: UserArg,
    delta: Annotated[
        str, typer.Argument(help="Credits to add (+) or remove (-).", show_default=False)
    ],
    reason: Reason = None,
    key: Key = None,
    json: Json = False,
) -> None:
    """Correct a balance by DELTA credits, with a reason (audited).

    Example: creditctl credits adjust alice@example.com -20 --reason "duplicate render"
    """
    from creditctl.ledger.corrections import adjust
    from creditctl.parsing.numbers import parse_delta

    ctx = current()
    change = parse_delta(delta, ctx.settings["credits.max_amount"])
    why = _reason(reason)
    posting = adjust(
        ctx.engine,
        user,
        change,
        actor=ctx.operator,
        reason=why,
        policy=ctx.policy,
        key=key,
    )
    _print_posting(posting, "adjusted", json)


@app.command("reverse", context_settings=SIGNED)
def reverse_command(
    entry_id: Annotated[str, typer.Argument(help="Ledger entry id.", show_default=False)],
    reason: Reason = None,
    json: Json = False,
) -> None:
    """Post the opposite of a ledger entry, with a reason (audited).

    Example: creditctl credits reverse 42 --reason "render failed on our side"
    """
    from creditctl.ledger.corrections import reverse

    ctx = current()
    entry = _id(entry_id, "entry id")
    why = _reason(reason)
    posting = reverse(ctx.engine, entry, actor=ctx.operator, reason=why, policy=ctx.policy)
    _print_posting(posting, f"reversed entry {entry}:", json)


@app.command("history")
def history_command(
    user: UserArg,
    since: Since = None,
    until: Until = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    json: Json = False,
) -> None:
    """The user's ledger entries, oldest first.

    Example: creditctl credits history alice@example.com --since 2026-11-01 --format csv
    """
    from creditctl.errors import InvalidInput
    from creditctl.ledger.history import history
    from creditctl.parsing.times import parse_when

    if format not in {"table", "csv", "json"}:
        raise InvalidInput(f"format {format!r} is not one of table, csv, json")
    rows = history(
        current().engine,
        user,
        since=parse_when(since, "--since") if since else None,
        until=parse_when(until, "--until") if until else None,
    )
    if json or format == "json":
        emit_json(rows)
    elif format == "csv":
        write_csv(rows, list(rows[0]) if rows else list(HISTORY_COLUMNS))
    else:
        table(rows, HISTORY_COLUMNS, title=f"ledger of {user}", empty="no entries")


@app.command("reserve", context_settings=SIGNED)
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
    credits = _amount(amount)
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


def _print_hold(result: Any, json: bool) -> None:
    if json:
        emit_json(result.as_dict())
        return
    say(str(result.hold_id))
    note(
        f"hold {result.hold_id} ({result.status}): {result.amount} credits for "
        f"{result.user_id}, expires {result.as_dict()['expires_at']}; available "
        f"{result.available}{' (already done: same key)' if result.replayed else ''}"
    )


HoldArg = Annotated[str, typer.Argument(help="Hold id.", show_default=False)]


@app.command("capture", context_settings=SIGNED)
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
    hold = _id(hold_id, "hold id")
    spend = _amount(amount) if amount is not None else None
    result = capture(ctx.engine, hold, spend, actor=ctx.operator, key=key)
    _print_hold(result, json)


@app.command("release", context_settings=SIGNED)
def release_command(hold_id: HoldArg, key: Key = None, json: Json = False) -> None:
    """Return every credit of a hold to the balance.

    Example: creditctl credits release 17
    """
    from creditctl.ledger.holds import release

    ctx = current()
    result = release(ctx.engine, _id(hold_id, "hold id"), actor=ctx.operator, key=key)
    _print_hold(result, json)
