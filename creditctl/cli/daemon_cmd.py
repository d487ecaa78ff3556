"""`creditctl daemon`: the long-running process (webhook receiver and scheduled jobs)."""

from __future__ import annotations

from typing import Annotated

import typer

from creditctl.cli.context import current


def daemon(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on (default: daemon.host, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Port to listen on (default: daemon.port, 8787).",
        ),
    ] = None,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Do not run the scheduled jobs in this process.")
    ] = False,
    no_http: Annotated[
        bool, typer.Option("--no-http", help="Do not serve HTTP (no webhook endpoint).")
    ] = False,
) -> None:
    """Receive Stripe webhooks at POST /webhooks/stripe and run scheduled jobs until SIGTERM.

    Example: STRIPE_WEBHOOK_SECRET=whsec_... creditctl daemon --host 127.0.0.1 --port 8787
    """
    from creditctl.daemon import run_daemon

    ctx = current()
    ctx.long_lived = True
    run_daemon(
        ctx.settings,
        ctx.engine,
        host=host or ctx.settings["daemon.host"],
        port=port or ctx.settings["daemon.port"],
        http=not no_http,
        scheduler=not no_scheduler,
    )
