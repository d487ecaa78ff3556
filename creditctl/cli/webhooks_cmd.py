"""`creditctl webhooks ...`: stored Stripe events; replay and backfill them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json, Since, moment
from creditctl.cli.output import emit_json, key_values, note, say, table

app = typer.Typer(
    help="Stored Stripe webhook events: list, show, replay, backfill.\n\n"
    "Example: creditctl webhooks list --status failed",
    no_args_is_help=True,
)

EventArg = Annotated[str, typer.Argument(help="Stripe event id (evt_...).", show_default=False)]
LIST_COLUMNS = (
    "id",
    "type",
    "status",
    "stripe_created",
    "received_at",
    "attempts",
    "user_id",
    "waiting_for",
    "note",
)


def _config() -> Any:
    from creditctl.webhooks.config import WebhookConfig

    return WebhookConfig.from_settings(current().settings)


@app.command("list")
def list_command(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="pending, processed, failed, ignored, deferred (waits for its subscription) "
            "or unmapped (waits for its customer to be linked to a user).",
        ),
    ] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="Event type, e.g. invoice.paid.")
    ] = None,
    since: Since = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10000, help="At most this many, the newest.")
    ] = 200,
    json: Json = False,
) -> None:
    """Stored events, oldest first, with their processing status.

    Example: creditctl webhooks list --status failed
    """
    from creditctl.errors import InvalidInput
    from creditctl.webhooks.events import STATUSES, list_events

    if status is not None and status not in STATUSES:
        raise InvalidInput(f"--status must be one of {', '.join(STATUSES)}")
    rows = list_events(current().engine, status=status, type_=type_, since=since, limit=limit)
    if json:
        emit_json(rows)
        return
    for row in rows:
        row["note"] = row["last_error"] or row["ignored_reason"]
    table(rows, LIST_COLUMNS, title="webhook events", empty="no stored webhook events")


@app.command("show")
def show_command(event_id: EventArg, json: Json = False) -> None:
    """One stored event: its processing record and the payload, pretty-printed.

    Example: creditctl webhooks show evt_1Pgc76B7WZ01zgkWwyRHS12y
    """
    import json as json_module

    from creditctl.webhooks.events import show_event

    event = show_event(current().engine, event_id)
    if json:
        emit_json(event)
        return
    key_values([(k, v) for k, v in event.items() if k != "payload"])
    say(json_module.dumps(event["payload"], indent=2, sort_keys=True))


def _print_outcomes(outcomes: list[Any], json: bool) -> None:
    if json:
        emit_json([o.as_dict() for o in outcomes])
        return
    for outcome in outcomes:
        state = outcome.status if outcome.ran else f"{outcome.status} (not re-run)"
        say(
            f"{outcome.event_id} {outcome.type}: {state}"
            + (f": {outcome.detail}" if outcome.detail and outcome.ran else "")
        )
    if not outcomes:
        note("no stored events matched")


@app.command("replay")
def replay_command(
    event_id: Annotated[
        str | None,
        typer.Argument(help="Stripe event id; or use --failed / --since.", show_default=False),
    ] = None,
    failed: Annotated[
        bool,
        typer.Option(
            "--failed",
            help="Every failed event, every pending one left by a dead process, and every "
            "deferred or unmapped one whose subscription or customer link is now recorded.",
        ),
    ] = False,
    since: Since = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Re-run processed and ignored events too (handlers are idempotent).",
        ),
    ] = False,
    json: Json = False,
) -> None:
    """Re-run stored events through the same exactly-once path as the daemon.

    Example: creditctl webhooks replay --failed
    """
    from creditctl.errors import CreditctlError, InvalidInput
    from creditctl.webhooks.processing import replay

    if (event_id is not None) + failed + (since is not None) != 1:
        raise InvalidInput("name one EVENT_ID, or pass --failed or --since DATE")
    outcomes = replay(
        current().engine,
        _config(),
        event_id=event_id,
        failed=failed,
        since=since,
        force=force,
    )
    _print_outcomes(outcomes, json)
    still = sum(1 for o in outcomes if o.failed)
    if still:
        raise CreditctlError(
            f"{still} event(s) failed again; see `creditctl webhooks list --status failed`"
        )


@app.command("backfill")
def backfill_command(
    since: Annotated[
        datetime,
        typer.Option(
            "--since",
            parser=moment("--since"),
            help="From this date (YYYY-MM-DD); Stripe keeps 30 days of events.",
        ),
    ],
    json: Json = False,
) -> None:
    """Fetch Stripe's events since a date; store and process those not seen yet.

    Example: creditctl webhooks backfill --since 2026-11-01
    """
    from creditctl.errors import CreditctlError
    from creditctl.webhooks.processing import backfill

    counts = backfill(current().engine, _config(), since=since)
    if json:
        emit_json(counts)
    else:
        say(", ".join(f"{name} {value}" for name, value in counts.items()))
    if counts.get("failed"):
        raise CreditctlError(
            f"{counts['failed']} event(s) failed; see `creditctl webhooks list --status failed`"
        )
