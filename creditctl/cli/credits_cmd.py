"""`creditctl credits ...`: the ledger commands render scripts and operators use."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from creditctl.cli import credits_holds_cmd
from creditctl.cli.context import current
from creditctl.cli.options import (
    SIGNED,
    AmountArg,
    Json,
    Key,
    Reason,
    Ref,
    Since,
    Until,
    UserArg,
    credit_amount,
    moment,
)
from creditctl.cli.output import emit_json, say, table, warn, write_csv

if TYPE_CHECKING:
    from creditctl.errors import CreditctlError
    from creditctl.ledger.results import Deducted, Posting

app = typer.Typer(
    help="Balances, deducts, grants, adjustments, reversals, holds and history.\n\n"
    "Example: creditctl credits deduct alice@example.com 1 --ref render-42",
    no_args_is_help=True,
)

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


def _balance_payload(balance: Any, warnings: list[str], **extra: Any) -> dict[str, Any]:
    return {**balance.as_dict(), **extra, "warnings": warnings}


def _shown(unlimited: bool, available: int) -> str:
    return "unlimited" if unlimited else str(available)


def deducted_dict(spent: Deducted, warnings: list[str]) -> dict[str, Any]:
    """A deduct's JSON (ledger.results.Deducted has no as_dict of its own)."""
    return {
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


def posting_dict(posting: Posting) -> dict[str, Any]:
    """A grant's, adjustment's or reversal's JSON (ledger.results.Posting has no as_dict)."""
    return {
        "user_id": posting.user_id,
        "entry_id": posting.entry_id,
        "type": posting.type,
        "amount": posting.amount,
        "balance_after": posting.balance_after,
        "grant_id": posting.grant_id,
        "replayed": posting.replayed,
    }


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
    verdict = check(ctx.database, user, credit_amount(amount), policy=ctx.policy)
    found = verdict.balance
    warnings = found.warnings(ctx.policy)
    payload = _balance_payload(found, warnings, needed=verdict.needed, ok=verdict.ok)
    if verdict.refusal is not None:
        raise _refusal_with(verdict.refusal, payload)
    if json:
        emit_json(payload)
    else:
        say(
            f"ok: {user} can spend {verdict.needed} (available "
            f"{_shown(found.unlimited, found.available)})"
        )
    warn(warnings)


def _refusal_with(refusal: CreditctlError, payload: dict[str, Any]) -> CreditctlError:
    """The domain's refusal as a new error carrying the check's payload, which --json prints."""
    return type(refusal)(refusal.message, **{**refusal.details, **payload})


@app.command("deduct", context_settings=SIGNED)
def deduct_command(
    user: UserArg, amount: AmountArg, ref: Ref = None, key: Key = None, json: Json = False
) -> None:
    """Spend AMOUNT credits, or refuse (exit 3) and change nothing.

    Example: creditctl credits deduct alice@example.com 1 --ref render-42 --key render-42
    """
    from creditctl.ledger.fastpath import deduct

    ctx = current()
    credits = credit_amount(amount)
    # --ref and --key were checked by their options' callbacks.
    spent = deduct(
        ctx.database, user, credits, actor=ctx.operator, policy=ctx.policy, ref=ref, key=key
    )
    warnings = spent.warnings(ctx.policy)
    if json:
        emit_json(deducted_dict(spent, warnings))
    else:
        again = " (already done: same key)" if spent.replayed else ""
        say(
            f"deducted {credits} from {spent.user_id}: entry {spent.entry_id}, "
            f"available {_shown(spent.unlimited, spent.available)}{again}"
        )
    warn(warnings)


def _print_posting(posting: Posting, verb: str, json: bool) -> None:
    if json:
        emit_json(posting_dict(posting))
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
        datetime | None,
        typer.Option(
            "--expires",
            parser=moment("expiry"),
            help="Expiry date (YYYY-MM-DD or ISO date-time); default: never.",
        ),
    ] = None,
    source: Annotated[str, typer.Option("--source", help="bonus, promotion or admin.")] = "bonus",
    key: Key = None,
    json: Json = False,
) -> None:
    """Give USER AMOUNT credits, with a reason (audited).

    Example: creditctl credits grant alice@example.com 50 --reason "make-good" --expires 2027-01-31
    """
    from creditctl.ledger.corrections import grant

    ctx = current()
    posting = grant(
        ctx.engine,
        user,
        credit_amount(amount),
        actor=ctx.operator,
        reason=reason,
        source=source,
        expires_at=expires,
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
    posting = adjust(
        ctx.engine,
        user,
        change,
        actor=ctx.operator,
        reason=reason,
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
    from creditctl.parsing.numbers import parse_id

    ctx = current()
    entry = parse_id(entry_id, "entry id")
    posting = reverse(ctx.engine, entry, actor=ctx.operator, reason=reason, policy=ctx.policy)
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

    if format not in {"table", "csv", "json"}:
        raise InvalidInput(f"format {format!r} is not one of table, csv, json")
    rows = history(current().engine, user, since=since, until=until)
    if json or format == "json":
        emit_json(rows)
    elif format == "csv":
        write_csv(rows, list(rows[0]) if rows else list(HISTORY_COLUMNS))
    else:
        table(rows, HISTORY_COLUMNS, title=f"ledger of {user}", empty="no entries")


credits_holds_cmd.register(app)
